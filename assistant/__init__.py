"""Domain Assistant: answers, summaries and code from your own documents."""
