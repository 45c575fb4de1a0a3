"""Valence, arousal and dominance per image: native ratings rescaled to 0-1, or synthesized from Warriner norms."""
