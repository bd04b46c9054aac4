"""Online feature store (Redis and in-process) and, with the serving issue, the nearline updater."""
