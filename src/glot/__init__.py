"""glot-pooling: GLOT sentence representations from frozen language models via token graphs.

Implements Mantri et al., "Towards Improved Sentence Representations using Token Graphs", ICLR 2026
(arXiv 2603.03389).
"""

from __future__ import annotations

__version__ = "0.1.0"
