"""Configuration read from the environment (``HIKER_*``), validated once at start.

Each service has its own settings class so that it asks only for what it uses: ingress needs the
app secret, sender the access token, and neither refuses to start for lack of the other's secret.
One module per service's settings; what they share (the broker, Redis, the secret policy,
reading the environment) is ``base``.
"""

from hiker.core.settings.ai import AISettings
from hiker.core.settings.api import DEFAULT_DATABASE_URL, ApiSettings
from hiker.core.settings.base import (
    ENV_PREFIX,
    CommonSettings,
    ConfigError,
    UnsafeSecret,
    check_secret,
    load_settings,
)
from hiker.core.settings.conversation import RESPONDER_SHARE_OF_LEASE, ConversationSettings
from hiker.core.settings.events import EventsSettings
from hiker.core.settings.graph import (
    DEFAULT_MEDIA_FOLDER,
    AccessTokens,
    GraphAccessSettings,
    GraphMockSettings,
    MediaSettings,
    SenderSettings,
    parse_token_list,
)
from hiker.core.settings.ingress import IngressSettings, parse_secret_list

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_MEDIA_FOLDER",
    "ENV_PREFIX",
    "RESPONDER_SHARE_OF_LEASE",
    "AISettings",
    "AccessTokens",
    "ApiSettings",
    "CommonSettings",
    "ConfigError",
    "ConversationSettings",
    "EventsSettings",
    "GraphAccessSettings",
    "GraphMockSettings",
    "IngressSettings",
    "MediaSettings",
    "SenderSettings",
    "UnsafeSecret",
    "check_secret",
    "load_settings",
    "parse_secret_list",
    "parse_token_list",
]
