"""Domain Assistant: answers, summaries and code from your own documents.

    from assistant import Assistant
    bot = Assistant.open("workspace")
    bot.ingest(["docs/"])
    ans = bot.ask("How do I rotate keys?")
"""
from assistant.config import Config
from assistant.core import Assistant, AnswerStream
from assistant.types import Answer, IngestReport, SentenceCheck, Source, Timings

__all__ = ["Assistant", "AnswerStream", "Answer", "Config", "IngestReport", "SentenceCheck", "Source", "Timings"]
