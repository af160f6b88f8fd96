"""Policy backends: Hugging Face causal LM (``hf``) and a bag-of-words linear LM (``bow``)."""
