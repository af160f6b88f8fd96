"""Policy models: env policy networks, the Hugging Face causal-LM text policy (``hf``), a bag-of-words LM (``bow``)."""
