"""The validator DB as a Dagster resource."""

from __future__ import annotations


from dagster import ConfigurableResource
from pydantic import PrivateAttr

from gaia_dagster.db.repository import ValidatorRepository, default_db_url
from gaia_dagster.resources.settings import dagster_home


class ValidatorDB(ConfigurableResource):
    """SQLAlchemy URL of the validator DB; empty means ``GAIA_DB_URL`` or SQLite under the instance."""

    url: str = ""
    _repo: ValidatorRepository | None = PrivateAttr(default=None)

    def resolved_url(self) -> str:
        return self.url or default_db_url(dagster_home())

    @property
    def repo(self) -> ValidatorRepository:
        """The repository, schema created on first use."""
        if self._repo is None:
            self._repo = ValidatorRepository(self.resolved_url())
            self._repo.create_schema()
        return self._repo
