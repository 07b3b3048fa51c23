"""What a Graph API id looks like, checked wherever one arrives from outside.

A phone number id becomes a segment of a Graph URL and picks the token it is sent with: anything
but digits there could name another endpoint (``123/deregister?``) or climb out of the number's
path (``../``). ``str.isdigit`` is not the check: it is true for other scripts' digits too.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import StringConstraints

# Meta's ids are 15 or 16 digits today; the bound leaves room and keeps garbage out.
_PHONE_NUMBER_ID: Final = re.compile(r"[0-9]{1,32}")

# For pydantic models: the same rule (``[0-9]``, never ``\d``, which is Unicode there too).
PhoneNumberId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,32}$")]


def is_phone_number_id(value: object) -> bool:
    """Whether ``value`` is a string of ASCII digits that Graph could know as a phone number id."""
    return isinstance(value, str) and _PHONE_NUMBER_ID.fullmatch(value) is not None
