"""Protocol-faithful fake upstreams (Anthropic, Ollama, OpenAI) on real sockets."""
