"""Gemma's token type ids: zeros (text) supplied wherever a caller leaves them out.

Gemma models mark each input token as text or image/audio.  SPEC asks for
zeros (older transformers refused to train Gemma without them;
transformers 5 names them ``mm_token_type_ids`` and treats them as
optional).  The callers that matter give none: TRL's trainers, PEFT
wrappers, the policy's own decoding.  So instead of threading an argument
through each of them, ``zero_token_type_ids`` hooks the model once, right
after loading (``sepo.models.loading`` does it for every Gemma model).
"""

from __future__ import annotations

import inspect

#: forward arguments that mark text tokens (0) against image/audio tokens in Gemma models
TOKEN_TYPE_ARGUMENTS = ("token_type_ids", "mm_token_type_ids")


def needs_token_type_ids(model_name: str) -> bool:
    """True for a Gemma model (a Hub id or a ``config.model_type``): it marks text and image tokens."""
    return "gemma" in model_name.lower()


def zero_token_type_ids(model) -> int:
    """Make every submodule whose forward takes token type ids receive zeros when its caller gave none.

    A forward pre-hook per such module, so it works however the model is
    called (PEFT calls the wrapped model's ``forward`` directly, but the
    inner modules are called normally).  Idempotent.  Returns how many
    modules got a hook by this call.
    """
    import torch

    def hook(module, args, kwargs):
        input_ids = kwargs.get("input_ids", args[0] if args and isinstance(args[0], torch.Tensor) else None)
        if input_ids is None:
            return None
        for argument in module._sepo_token_type_arguments:
            if kwargs.get(argument) is None:
                kwargs[argument] = torch.zeros_like(input_ids)
        return args, kwargs

    hooked = 0
    for module in model.modules():
        parameters = inspect.signature(module.forward).parameters
        arguments = tuple(a for a in TOKEN_TYPE_ARGUMENTS if a in parameters)
        if arguments and "input_ids" in parameters and not hasattr(module, "_sepo_token_type_arguments"):
            module._sepo_token_type_arguments = arguments
            module.register_forward_pre_hook(hook, with_kwargs=True)
            hooked += 1
    return hooked
