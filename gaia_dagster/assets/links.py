"""Links in the UI (issue 18): a URL that came from a miner is shown as a link only when it is an
http or https URL on the miner's own endpoint (``core.urls.linkable``); anything else is plain text."""

from dagster import MetadataValue

from gaia_dagster.core.urls import linkable, store_url_of


def miner_link(url: str | None, base_url: str) -> MetadataValue:
    """``url`` (a store path is joined to ``base_url``) as a link, or as text saying why it is not one."""
    if not url:
        return MetadataValue.text("")
    absolute = store_url_of(url, base_url)
    if linkable(absolute, base_url):
        return MetadataValue.url(absolute)
    return MetadataValue.text(f"{url[:200]} (not a link: not an http or https URL on the miner's endpoint)")
