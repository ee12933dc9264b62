"""int8 for the cpu (TFLite) target.

    ranges.py        calibration observers: activation statistics in LiteRT, minmax/percentile/mse/entropy
    full_integer.py  the full-integer rewrite of the TFLite IR (per-channel weights, calibrated activations)
    policy.py        which layers stay float by rule (--int8-policy) or by hand (--keep-float)
    measure.py       candidates in LiteRT: hold-out accuracy and host latency
    layers.py        the layer debugger: quantized graph against its float twin, tensor by tensor
    pipeline.py      the flow: calibrate, quantize, measure, debug, mixed precision (edgepack.mixed)
"""
