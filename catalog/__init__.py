"""Dataset loaders (MovieLens, TMDB) and the normalized catalog tables."""

from catalog.errors import DataError
from catalog.tables import Catalog, load_catalog

__all__ = ["Catalog", "DataError", "load_catalog"]
