"""LLM generation: OpenAI-compatible client, durable response cache, prompt templates, describer, reasoner."""
