"""The bundled catalog of GPU types and cloud offerings (public facts with their sources)."""

from .loader import Catalog, Offering, bundled_catalog

__all__ = ["Catalog", "Offering", "bundled_catalog"]
