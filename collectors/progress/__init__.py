"""Job progress scraped from inference servers' Prometheus metrics (vLLM, Triton, TGI)."""
