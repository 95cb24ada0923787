"""Scale-out: several processes (`distributed`), sharded backbones (`sharding`: FSDP, ZeRO-3),
quantized backbones (`quantization`) and where a model runs and in which precision (`runtime`).
Imports the core only."""
