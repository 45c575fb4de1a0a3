"""Label refinement: native taxonomies mapped to Ekman six + neutral, distributions and rankings."""
