"""The console's pages, one module per area; :data:`PAGES` is the table the app serves."""

from __future__ import annotations

from console.pages.alerts import load_alerts
from console.pages.channels import load_channel, load_channels
from console.pages.edges import load_edges
from console.pages.guide import load_guide
from console.pages.helpdesk import load_helpdesk
from console.pages.jobs import load_jobs
from console.pages.reports import load_reports
from console.pages.subscribers import load_subscribers
from console.view import Page

# The navigation's pages, in its order; each is also served as /api/<name>.json.
PAGES = (
    Page("channels", "/channels", load_channels),
    Page("edges", "/edges", load_edges),
    Page("jobs", "/jobs", load_jobs),
    Page("guide", "/guide", load_guide),
    Page("subscribers", "/subscribers", load_subscribers),
    Page("helpdesk", "/helpdesk", load_helpdesk),
    Page("reports", "/reports", load_reports),
    Page("alerts", "/alerts", load_alerts),
)
# One channel's page: /channels/{channel}, and /api/channels/{channel}.json.
CHANNEL = Page("channel", "/channels/{channel}", load_channel)
