"""Each source lead's identity keys: what can tie its company or persona to another lead's.

Companies join on a domain or on a name (a domain-less mention joins a domain company
bearing its name), personas on an email, a LinkedIn URL or a full name. Two leads whose
key sets overlap, directly or through other leads, may resolve to one company or persona;
leads that share no key never do. A refresh therefore re-resolves only the leads connected
to what changed (`leadnorm.steps.scope`) and gets what resolving everything would give.
Pure: mentions in, a frame out.
"""

from __future__ import annotations

import pandas as pd

from leadnorm.contract import legacy_key
from leadnorm.transform.split import Mentions

# mention column -> key prefix; the prefixes keep a company's name apart from a persona's
COMPANY_KEY_COLUMNS = {"domain": "company-domain:", "name_key": "company-name:"}
PERSONA_KEY_COLUMNS = {"email": "email:", "linkedin_url": "linkedin:", "name_key": "persona-name:"}


def lead_keys(mentions: Mentions) -> pd.DataFrame:
    """One row per migrated source lead: `_id` (the source `_id`) and `keys` (sorted strings)."""
    keys: dict[bytes, set[str]] = {}
    ids: dict[bytes, object] = {}
    for source_id in mentions.leads["legacy_lead_id"]:
        ids[legacy_key(source_id)] = source_id
    for frame, columns in (
        (mentions.company_mentions, COMPANY_KEY_COLUMNS),
        (mentions.persona_mentions, PERSONA_KEY_COLUMNS),
    ):
        for column, prefix in columns.items():
            for source_id, value in zip(frame["legacy_lead_id"], frame[column]):
                if isinstance(value, str):
                    keys.setdefault(legacy_key(source_id), set()).add(prefix + value)
    return pd.DataFrame(
        {
            "_id": pd.Series(list(ids.values()), dtype=object),
            "keys": pd.Series([sorted(keys.get(key, ())) for key in ids], dtype=object),
        }
    )
