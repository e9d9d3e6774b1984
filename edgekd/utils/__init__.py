"""Small helpers with no knowledge of distillation, pruning or quantization, shared by every part.

``naming`` (did-you-mean messages), ``modes`` (inference without losing train mode), ``modules``
(submodules by dotted name), ``lazy`` (package attributes imported on first use), ``quiet``
(third-party log noise, for the CLI and the bench worker), ``progress`` (bars on a terminal only).
"""
