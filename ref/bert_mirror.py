"""A plain-PyTorch mirror of Hugging Face's BERT (transformers' modeling_bert.py, eager
attention), used as the numerical oracle for tlm. It reproduces, and the golden tests rely on:

- post-LayerNorm blocks: LN(x + dropout(dense(attention))), LN(h + dropout(dense(gelu(dense(h))))),
  LayerNorm eps from the config (1e-12 for BERT);
- GELU in its exact erf form (hidden_act "gelu" -> F.gelu);
- embeddings = (word + token_type) + absolute position, then LayerNorm, then dropout;
- scores = q k^T / sqrt(head_dim) + (1 - mask) * finfo(float32).min, softmax, dropout, @ v;
- MLM head: dense -> gelu -> LayerNorm -> decoder tied to the word embeddings + its own bias
  (cls.predictions.bias), loss = mean cross-entropy over labels != -100;
- classification head: pooler dense + tanh on position 0 -> dropout -> linear, mean cross-entropy;
- HF init: normal(0, initializer_range) for Linear and Embedding weights, zero biases,
  LayerNorm 1/0, the padding row of the word embeddings zero;
- state-dict names exactly as Hugging Face's BertForMaskedLM / BertForSequenceClassification.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"], padding_idx=c["pad_token_id"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, ids, type_ids):
        pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        x = self.word_embeddings(ids) + self.token_type_embeddings(type_ids)
        x = x + self.position_embeddings(pos)
        return self.dropout(self.LayerNorm(x))


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.d = h // self.heads
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)
        self.dropout = nn.Dropout(c["attention_probs_dropout_prob"])

    def split(self, x):
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.d).permute(0, 2, 1, 3)

    def forward(self, x, ext_mask):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.d)
        scores = scores + ext_mask
        probs = self.dropout(F.softmax(scores, dim=-1))
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(x.shape)


class DenseResidualLN(nn.Module):
    """BertSelfOutput / BertOutput: LN(x + dropout(dense(h)))."""

    def __init__(self, c, inp):
        super().__init__()
        self.dense = nn.Linear(inp, c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, h, x):
        return self.LayerNorm(self.dropout(self.dense(h)) + x)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        setattr(self, "self", SelfAttention(c))
        self.output = DenseResidualLN(c, c["hidden_size"])

    def forward(self, x, ext_mask):
        return self.output(getattr(self, "self")(x, ext_mask), x)


class Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

    def forward(self, x):
        return F.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseResidualLN(c, c["intermediate_size"])

    def forward(self, x, ext_mask):
        a = self.attention(x, ext_mask)
        return self.output(self.intermediate(a), a)


class ConvolutionLayers(nn.Module):
    """The paper's convolutional front-end (Rg32601/Tiny-Language-Models, nlp_bert_conv/models.py:
    their ConvolutionLayers, with the same module and state-dict names), block 0 of their encoder."""

    def __init__(self, num_layers, channels, kernel_size, pad_to=0):
        super().__init__()
        self.pad_to = pad_to  # > 0: their padded batches (tlm's conv pad_to); 0: tlm's packed semantics
        self.layers = nn.ModuleList()
        for i in range(num_layers):
            self.layers.extend([nn.Conv2d(channels[i], channels[i + 1], kernel_size=kernel_size, padding="same"),
                                nn.BatchNorm2d(channels[i + 1]), nn.GELU()])
        self.conv = nn.Sequential(nn.Conv2d(channels[-1], 1, kernel_size=1, padding="same"), nn.BatchNorm2d(1),
                                  nn.GELU())

    def packed(self, x, lengths):
        """tlm's semantics: x (n, width) packed sequences, each convolved as its own image (zero
        padding at its own edges), each BatchNorm over every real token's pixels -> (n, width)."""
        n, width = x.shape
        hs = list(torch.split(x.reshape(1, 1, n, width), lengths, dim=2))
        for m in list(self.layers) + list(self.conv):
            if isinstance(m, nn.BatchNorm2d):
                hs = list(torch.split(m(torch.cat(hs, dim=2)), lengths, dim=2))
            else:
                hs = [m(h) for h in hs]
        return torch.cat(hs, dim=2).reshape(n, width)

    def forward(self, x, ext_mask):
        """x (batch, seq, width) padded; the real tokens are where ext_mask is 0. Packed: padding
        rows come out 0 (they are masked keys downstream and never reach a loss). Padded: their
        code as it is, the [PAD] rows part of every image and of BatchNorm's statistics."""
        if self.pad_to:
            assert x.shape[1] == self.pad_to, (x.shape, self.pad_to)
            h = x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])
            for m in list(self.layers) + list(self.conv):
                h = m(h)
            return h.reshape(x.shape)
        real = ext_mask[:, 0, 0, :] == 0
        lengths = real.sum(dim=1).tolist()
        out = torch.zeros_like(x)
        out[real] = self.packed(x[real], lengths)
        return out


def conv_config(c):
    """The config's convolutional front-end (tlm's config.json: "tlm": {"conv": {...}}), or None."""
    conv = c.get("tlm", {}).get("conv")
    return conv if conv and conv.get("layers", 0) > 0 else None


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        layers = [Layer(c) for _ in range(c["num_hidden_layers"])]
        conv = conv_config(c)
        if conv:  # their BertConfig gets layers + 1 blocks and block 0 becomes the convolution
            d = conv["channels"]
            layers = [ConvolutionLayers(conv["layers"], [1] + [d] * conv["layers"], tuple(conv["kernel"]),
                                        conv.get("pad_to", 0))] + layers
        self.layer = nn.ModuleList(layers)

    def forward(self, x, ext_mask):
        for layer in self.layer:
            x = layer(x, ext_mask)
        return x


class Pooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))


class Bert(nn.Module):
    def __init__(self, c, pooler):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)
        if pooler:
            self.pooler = Pooler(c)

    def forward(self, ids, mask, type_ids):
        ext = (1.0 - mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
        return self.encoder(self.embeddings(ids, type_ids), ext)


class Transform(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, x):
        return self.LayerNorm(F.gelu(self.dense(x)))


class Predictions(nn.Module):
    def __init__(self, c, word_embeddings):
        super().__init__()
        self.transform = Transform(c)
        self.bias = nn.Parameter(torch.zeros(c["vocab_size"]))
        self.word_embeddings = [word_embeddings]  # tied, kept out of the state dict as HF saves it

    def forward(self, x):
        return F.linear(self.transform(x), self.word_embeddings[0].weight, self.bias)


class MLMHead(nn.Module):
    def __init__(self, c, word_embeddings):
        super().__init__()
        self.predictions = Predictions(c, word_embeddings)

    def forward(self, x):
        return self.predictions(x)


def init_weights(model, c):
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.weight.data.normal_(0.0, c["initializer_range"])
            if m.bias is not None:
                m.bias.data.zero_()
        elif isinstance(m, nn.Embedding):
            m.weight.data.normal_(0.0, c["initializer_range"])
            if m.padding_idx is not None:
                m.weight.data[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            m.weight.data.fill_(1.0)
            m.bias.data.zero_()


class BertForMaskedLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.bert = Bert(c, pooler=False)
        self.cls = MLMHead(c, self.bert.embeddings.word_embeddings)
        init_weights(self, c)

    def forward(self, ids, mask, type_ids, labels=None):
        logits = self.cls(self.bert(ids, mask, type_ids))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)
        return logits, loss


class BertForSequenceClassification(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.bert = Bert(c, pooler=True)
        p = c.get("classifier_dropout")
        self.dropout = nn.Dropout(c["hidden_dropout_prob"] if p is None else p)
        self.classifier = nn.Linear(c["hidden_size"], len(c["id2label"]))
        init_weights(self, c)

    def forward(self, ids, mask, type_ids, labels=None):
        pooled = self.bert.pooler(self.bert(ids, mask, type_ids))
        logits = self.classifier(self.dropout(pooled))
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return logits, loss


def build(config):
    """config: a Hugging Face config.json dict."""
    arch = config.get("architectures", ["BertForMaskedLM"])[0]
    return BertForSequenceClassification(config) if arch == "BertForSequenceClassification" else BertForMaskedLM(config)


def linear_schedule(step, warmup, total):
    """HF get_linear_schedule_with_warmup's lambda."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))
