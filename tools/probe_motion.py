#!/usr/bin/python3
"""Why does a trained UNet not follow motion words? Two measurements on a model folder.

Usage: /usr/bin/python3 tools/probe_motion.py MODEL_DIR [--prompt 'a red circle {} on a black background']
                                                   [--latent 16]

1. Position attention of every motion module: the attention each head of attn1 would pay by
   the positional table alone (q = W_q pe_f, k = W_k pe_g, 16 frames): its entropy as a share of
   the uniform one (1.00: blind to frame order), and the mean weight on the frame itself, the
   one before and the one after. A clip and the same clip played backwards (left/right,
   growing/shrinking) differ only in frame order, so heads blind to it cannot tell them apart.
2. The x0 the UNet predicts from pure noise (t = 999; with zero terminal SNR, x0 = -v), per
   motion word, decoded by the VAE: where the object's centroid is in the first and the last
   frame and its area. A model that follows motion words moves the centroid the way the word
   says; one that does not gives every word the same path.

Runs the plain-torch reference (tools/fixtures/refmodels.py) on the folder's own tensors.
"""
import argparse
import json
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'fixtures'))
import make_models as MM  # noqa: E402
import refmodels as R  # noqa: E402

MOTIONS = ['moving left', 'moving right', 'moving up', 'moving down', 'growing', 'shrinking',
           'spinning']


def position_attention(unet):
    print('position attention of attn1 (per head: entropy / uniform, weight on f, f-1, f+1)')
    for name, mod in unet.named_modules():
        if not name.endswith('attn1') or 'motion_modules' not in name:
            continue
        block = unet.get_submodule(name.rsplit('.', 1)[0])
        pe = block.pos_embed.pe[0, :16].float()
        q, k = pe @ mod.to_q.weight.float().T, pe @ mod.to_k.weight.float().T
        heads = mod.heads                    # per module: configs may list them per level
        d = q.shape[1] // heads
        cells = []
        for h in range(heads):
            a = ((q[:, h * d:(h + 1) * d] @ k[:, h * d:(h + 1) * d].T) / math.sqrt(d)).softmax(-1)
            ent = float(-(a * a.clamp_min(1e-12).log()).sum(-1).mean() / math.log(16))
            prev = float(torch.stack([a[f, f - 1] for f in range(1, 16)]).mean())
            nxt = float(torch.stack([a[f, f + 1] for f in range(15)]).mean())
            cells.append('%.2f %.2f %.2f %.2f' % (ent, float(a.diagonal().mean()), prev, nxt))
        print('  %-48s %s' % (name[:-len('.transformer_blocks.0.attn1')], ' | '.join(cells)))


def x0_paths(M, prompt, shared, side):
    unet, vae, clip, tok = M['unet'], M['vae'], M['clip'], M['tok']
    sf = json.load(open(os.path.join(M['root'], 'vae', 'config.json')))['scaling_factor']
    g = torch.Generator().manual_seed(0)
    shape = (1, 4, 1 if shared else 16, side, side)
    noise = torch.randn(shape, generator=g, dtype=torch.float64).expand(len(MOTIONS), -1, 16, -1, -1)
    with torch.no_grad():
        ctx = clip(torch.tensor([tok.encode(prompt.format(m)) for m in MOTIONS]))
        ctx = ctx[0] if isinstance(ctx, tuple) else ctx
        x0 = -unet(noise.contiguous(), torch.full((len(MOTIONS),), 999.0, dtype=torch.float64), ctx)
        fr = vae.decode(x0.permute(0, 2, 1, 3, 4).reshape(-1, 4, side, side) / sf)
    fr = fr.reshape(len(MOTIONS), 16, 3, fr.shape[-2], fr.shape[-1])
    S = fr.shape[-1]
    print('x0 from pure noise at t = 999 (%s noise): centroid x, y and area, first -> last frame'
          % ('the same' if shared else 'independent'))
    for m, f in zip(MOTIONS, fr):
        bg = f.reshape(16, 3, -1).median(dim=2).values[:, :, None, None]
        dev = (f - bg).abs().sum(1)
        w = dev / dev.sum((1, 2), keepdim=True).clamp_min(1e-9)
        ax = torch.arange(S, dtype=w.dtype)
        xs, ys = (w * ax[None, None, :]).sum((1, 2)), (w * ax[None, :, None]).sum((1, 2))
        area = (dev > 0.5).sum((1, 2))
        print('  %-13s x %5.1f -> %5.1f   y %5.1f -> %5.1f   area %4d -> %4d'
              % (m, xs[0], xs[-1], ys[0], ys[-1], int(area[0]), int(area[-1])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('model')
    ap.add_argument('--prompt', default='a red circle {} on a black background')
    ap.add_argument('--latent', type=int, default=16,
                    help='latent side (16: 64x64 frames; 8 for a model trained with --size 32)')
    a = ap.parse_args()
    torch.set_num_threads(2)
    R.DDIMScheduler = lambda cfg: None          # the probe needs no sampler (and zero SNR)
    M = MM.load(os.path.abspath(a.model))
    position_attention(M['unet'])
    for shared in (False, True):
        x0_paths(M, a.prompt, shared, a.latent)


if __name__ == '__main__':
    main()
