"""The paper (Mantri et al., ICLR 2026), torch + PyG only: configs, packing, token graph, GNN, readout,
poolers and their save/load. Imports neither transformers, datasets nor matplotlib."""
