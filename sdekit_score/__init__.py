"""sdekit_score: score-based generative sampling built from sdekit parts."""
