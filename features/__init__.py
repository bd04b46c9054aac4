"""Online feature store and nearline updater (built in the serving issue)."""
