"""The fast loop: correction memory in Qdrant, routing rules, retrieval weights, lookup API.

Wiring: ``service.MemoryService`` (worker + shared store), ``api`` (routers), ``app``
(`hfloop worker --role memory`), ``cli`` (`hfloop memory ...`). Decisions: ``logic``.
Heavy imports (torch, onnxruntime, qdrant) stay out of this package's import.
"""
