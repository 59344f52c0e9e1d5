"""Building blocks shared by the encoder, the decoders and the heads (RoPE, attention, MLPs, blocks)."""
