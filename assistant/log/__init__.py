"""The conversation log: questions, answers, their sources and feedback, in SQLite or PostgreSQL.

```python
log = ConversationLog.open(log_url(config, workspace))
cid = log.start_conversation()
qid = log.record_question(cid, "How do I rotate keys?", task="qa")
aid = log.begin_answer(cid, qid, task="qa", model="smollm2", options={"temperature": 0})
log.finish_answer(aid, content="Run `vault rotate` [1].", sources=answer.sources)
log.add_feedback(aid, rating=1)
```
"""
from __future__ import annotations

from pathlib import Path

from assistant.config import Config
from assistant.log.records import (
    ConversationDetail, ConversationSummary, LoggedFeedback, LoggedMessage, LoggedSource,
)
from assistant.log.redact import redact
from assistant.log.store import ConversationLog

__all__ = [
    "ConversationLog", "ConversationDetail", "ConversationSummary", "LoggedFeedback",
    "LoggedMessage", "LoggedSource", "log_url", "redact",
]

LOG_FILE = "log.db"


def log_url(config: Config, workspace: Path) -> str:
    """The workspace's log: `config.database_url` when set, else the SQLite file `log.db` in it."""
    if config.database_url:
        return config.database_url
    return f"sqlite:///{Path(workspace) / LOG_FILE}"
