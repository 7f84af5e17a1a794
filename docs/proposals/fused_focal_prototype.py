# Prototype for the lead (not part of the library): sigmoid focal loss (gamma 2, mean) as one
# autograd.Function whose closed-form gradient is computed in forward, against stableloss and smp.
# Run: PYTHONPATH=. python docs/proposals/fused_focal_prototype.py
import sys, torch, torch.nn.functional as F
sys.path.insert(0, "bench")
import _common as C, stableloss as sl, segmentation_models_pytorch as smp
torch.set_num_threads(1)
L = 65504.0
class FusedSigmoidFocal(torch.autograd.Function):
    """mean_i (1-p_t)^g * CE_i with the closed-form gradient computed in forward (one saved tensor)."""
    @staticmethod
    def forward(ctx, x, t, gamma):
        xf = x.float().clamp(-L, L)
        ce = F.softplus(xf) - xf * t
        q = -torch.expm1(-ce)
        qg = q.pow(gamma)
        n = x.numel()
        loss = (qg * ce).sum(dtype=torch.float32) / n
        # d/dx = (sigmoid(x) - t) * (q^g + g q^(g-1) (1-q) ce)
        dce = torch.sigmoid(xf).sub_(t)
        w = q.pow(gamma - 1).mul_(gamma).mul_(1 - q).mul_(ce).add_(qg)
        ctx.save_for_backward(dce.mul_(w).div_(n))
        ctx.dtype = x.dtype
        return loss
    @staticmethod
    def backward(ctx, g):
        (grad,) = ctx.saved_tensors
        return (grad * g).to(ctx.dtype), None, None
fused = lambda x, t: FusedSigmoidFocal.apply(x, t, 2.0)
g = torch.Generator().manual_seed(0)
x, t, _ = C.soft_prediction((8,1,256,256), generator=g); x.requires_grad_()
# correctness vs stableloss
ref = sl.FocalLoss("binary", validate_args=False)
l1 = ref(x, t); (g1,) = torch.autograd.grad(l1, x)
l2 = fused(x, t); (g2,) = torch.autograd.grad(l2, x)
print("value diff", float((l1 - l2).detach().abs()), "grad rel diff", float((g1 - g2).norm() / g1.norm()))
fns = {"sl_focal_noval": ref, "smp_focal": smp.losses.FocalLoss("binary"), "fused": fused}
import time
T = C.time_interleaved(fns, x, t, autocast=None, warmup=3, repeats=50, clock=time.thread_time)
for n, v in T.items(): m, i = C.spread(v); print(f"{n:16s} med {m*1e3:.3f} ms min {min(v)*1e3:.3f}  peak {C.peak_memory(fns[n], x, t, None)/2**20:.1f} MiB")
