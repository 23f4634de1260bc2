"""Training on the twins with stable-baselines3 (configs, vectorized envs, checkpoints)."""
