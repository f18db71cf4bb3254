"""Modules that spell out, with one ``nn.Linear`` per static weight matrix and one
:class:`MatMul` per product of two activations, what ``nn.MultiheadAttention``, ``nn.LSTM`` and
``nn.GRU`` compute, so that every matrix product is a module the accuracy oracle can replace.

:func:`pimsim.from_torch` gives ``nn.MultiheadAttention`` and the recurrent modules the same layer
names as these modules' submodules (``attn.q``, ``attn.scores``, ``lstm.l0``...), and
:func:`decompose` swaps them in place of torch's modules with the same weights and the same
arithmetic (tests check the outputs agree to float rounding).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MatMul(nn.Module):
    """``a @ b`` for two activations (broadcast over leading dimensions), as a module so that
    the oracle can compute it where the spec maps it (digital units or rewritten arrays)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The batched product ``a @ b``."""
        return torch.matmul(a, b)


class Attention(nn.Module):
    """Multi-head attention on (batch, sequence, features) inputs with separate q/k/v/out
    projections: softmax(Q K^T / sqrt(d)) V. Same arithmetic as ``nn.MultiheadAttention``
    (``batch_first=True``, no masks, no dropout at inference); returns the output alone."""

    def __init__(
        self, dim: int, heads: int, bias: bool = True, kdim=None, vdim=None, **factory
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=bias, **factory)  # factory: device, dtype
        self.k = nn.Linear(kdim or dim, dim, bias=bias, **factory)
        self.v = nn.Linear(vdim or dim, dim, bias=bias, **factory)
        self.scores = MatMul()
        self.context = MatMul()
        self.out_proj = nn.Linear(dim, dim, bias=bias, **factory)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, query, key=None, value=None):
        """Attend ``query`` to ``key``/``value`` (self-attention when they are omitted)."""
        key = query if key is None else key
        value = key if value is None else value
        q, k, v = self._split(self.q(query)), self._split(self.k(key)), self._split(self.v(value))
        scale = 1.0 / math.sqrt(q.shape[-1])
        attn = torch.softmax(self.scores(q * scale, k.transpose(-2, -1)), dim=-1)
        out = self.context(attn, v).transpose(1, 2)
        return self.out_proj(out.reshape(out.shape[0], out.shape[1], -1))


class _TorchMHA(Attention):
    """:class:`Attention` holding an ``nn.MultiheadAttention``'s weights and returning its
    ``(output, None)`` tuple, to stand in for it inside a model."""

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        bias = mha.in_proj_bias is not None
        w = mha.out_proj.weight  # build on its device (meta included) and in its dtype
        super().__init__(mha.embed_dim, mha.num_heads, bias, mha.kdim, mha.vdim,
                         device=w.device, dtype=w.dtype)  # fmt: skip
        e = mha.embed_dim
        with torch.no_grad():
            if mha._qkv_same_embed_dim:
                for i, lin in enumerate((self.q, self.k, self.v)):
                    lin.weight.copy_(mha.in_proj_weight[i * e : (i + 1) * e])
            else:
                self.q.weight.copy_(mha.q_proj_weight)
                self.k.weight.copy_(mha.k_proj_weight)
                self.v.weight.copy_(mha.v_proj_weight)
            if mha.in_proj_bias is not None:
                for i, lin in enumerate((self.q, self.k, self.v)):
                    lin.bias.copy_(mha.in_proj_bias[i * e : (i + 1) * e])
            self.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                self.out_proj.bias.copy_(mha.out_proj.bias)
        # what torch's transformer layers read of their attention before calling it: with no
        # packed in-projection they take their plain (non fused) path, which calls forward
        self.batch_first = mha.batch_first
        self.embed_dim, self.num_heads = mha.embed_dim, mha.num_heads
        self._qkv_same_embed_dim = False
        self.in_proj_weight = self.in_proj_bias = None

    def merge_masks(self, attn_mask, key_padding_mask, query):
        """No masks are merged (attention here is unmasked)."""
        return None, None

    def forward(self, query, key=None, value=None, *args, **kwargs):
        """``nn.MultiheadAttention``'s call: (output, None)."""
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        out = super().forward(query, key, value)
        return (out if self.batch_first else out.transpose(0, 1)), None


class RNN(nn.Module):
    """An LSTM or GRU (``batch_first``, any layers, either direction) computed step by step with
    one ``nn.Linear`` per layer and direction holding [W_ih | W_hh] stacked, applied to the
    concatenation [x_t, h_{t-1}]: the matrix the mapper places on the arrays. A GRU's candidate
    gate keeps its hidden part in separate output rows (the reset gate scales it alone), so its
    linear has 4H outputs. Returns ``(output, None)`` like a recurrent module's (output, state)."""

    def __init__(self, module: nn.LSTM | nn.GRU) -> None:
        super().__init__()
        self.op = "lstm" if isinstance(module, nn.LSTM) else "gru"
        self.hidden_size = h = module.hidden_size
        self.num_layers = module.num_layers
        self.bidirectional = module.bidirectional
        self.batch_first = module.batch_first
        self.bias = module.bias
        for layer in range(self.num_layers):
            for d in range(2 if self.bidirectional else 1):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                w_ih, w_hh = getattr(module, "weight_ih" + sfx), getattr(module, "weight_hh" + sfx)
                b_ih = getattr(module, "bias_ih" + sfx, None)
                b_hh = getattr(module, "bias_hh" + sfx, None)
                fin = w_ih.shape[1]
                bias = b_ih is not None
                # on the module's device (meta included) and in its dtype
                lin = nn.Linear(fin + h, 4 * h, bias=bias, device=w_ih.device, dtype=w_ih.dtype)
                if self.op == "lstm":
                    weight = torch.cat([w_ih, w_hh], dim=1)
                    b = (b_ih + b_hh) if bias else None
                else:
                    weight = w_ih.new_zeros(4 * h, fin + h)
                    weight[: 2 * h] = torch.cat([w_ih[: 2 * h], w_hh[: 2 * h]], dim=1)
                    weight[2 * h : 3 * h, :fin] = w_ih[2 * h :]
                    weight[3 * h :, fin:] = w_hh[2 * h :]
                    b = None
                    if bias:
                        b = torch.cat([b_ih[: 2 * h] + b_hh[: 2 * h], b_ih[2 * h :], b_hh[2 * h :]])
                with torch.no_grad():
                    lin.weight.copy_(weight)
                    if b is not None:
                        lin.bias.copy_(b)
                self.add_module(f"l{layer}" + ("_reverse" if d else ""), lin)

    def _run(self, lin: nn.Linear, x: torch.Tensor, reverse: bool) -> torch.Tensor:
        b, t, _ = x.shape
        h = x.new_zeros(b, self.hidden_size)
        c = x.new_zeros(b, self.hidden_size)
        outs = [None] * t
        for step in range(t - 1, -1, -1) if reverse else range(t):
            g = lin(torch.cat([x[:, step], h], dim=1))
            if self.op == "lstm":
                i, f, cand, o = g.chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(cand)
                h = torch.sigmoid(o) * torch.tanh(c)
            else:
                r, z, n_x, n_h = g.chunk(4, dim=1)
                r, z = torch.sigmoid(r), torch.sigmoid(z)
                n = torch.tanh(n_x + r * n_h)
                h = (1 - z) * n + z * h
            outs[step] = h
        return torch.stack(outs, dim=1)

    def forward(self, x: torch.Tensor, state=None):
        """Run every layer and direction over the sequence (initial state zero)."""
        if state is not None:
            raise ValueError("an initial recurrent state is not supported; start from zeros")
        if not self.batch_first:
            x = x.transpose(0, 1)
        for layer in range(self.num_layers):
            outs = [self._run(getattr(self, f"l{layer}"), x, False)]
            if self.bidirectional:
                outs.append(self._run(getattr(self, f"l{layer}_reverse"), x, True))
            x = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
        return (x if self.batch_first else x.transpose(0, 1)), None


def decompose(model: nn.Module) -> nn.Module:
    """Replace, in place, every ``nn.MultiheadAttention`` by an equivalent :class:`Attention`
    and every ``nn.LSTM``/``nn.GRU`` by an equivalent :class:`RNN`, so that each static-weight
    matrix product is an ``nn.Linear`` module; returns ``model``."""
    for name, mod in list(model.named_modules()):
        if isinstance(mod, nn.MultiheadAttention):
            new = _TorchMHA(mod)
        elif isinstance(mod, (nn.LSTM, nn.GRU)):
            new = RNN(mod)
        else:
            continue
        new.to(next(mod.parameters()).device)
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, new)
    return model


__all__ = ["Attention", "MatMul", "RNN", "decompose"]
