"""Speed and memory figures of cd4ml-console (`make bench`; results in docs/performance.md)."""
