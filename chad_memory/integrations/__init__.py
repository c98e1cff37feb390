"""Adapters for the frameworks agents are built with; each needs its optional extra.

- `chad_memory.integrations.langchain`: `ChadMemoryTracer` (`pip install chad-memory[langchain]`)
- `chad_memory.integrations.langgraph`: `ChadMemoryStore` (`pip install chad-memory[langgraph]`)
"""
