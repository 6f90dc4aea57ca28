using Osprey.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Distributed;

/// <summary>
/// PyTorch's <c>SyncBatchNorm</c> semantics for every <see cref="BatchNorm2d"/> of a model (TorchSharp has none): in
/// training mode the batch statistics are those of the global batch, from an all-reduce of the per-channel sum,
/// sum of squares and element count (accumulated in float64); the backward all-reduces their gradients, so that
/// each rank's input gradient includes the other ranks' losses, as in one process over the whole batch. Running
/// statistics are updated from the global mean and unbiased variance. Eval mode is untouched.
/// </summary>
/// <remarks>
/// Attached by forward hooks (the model's modules are not replaced): a pre-hook switches the native module to
/// eval for the call (so it neither updates its running statistics nor computes batch statistics), the post-hook
/// replaces its output. Dispose to detach. In a world of one nothing is attached (as PyTorch, which then uses the
/// plain batch norm).
/// </remarks>
public sealed class SyncBatchNorm : IDisposable
{
    readonly List<Action> _hooks = new();

    /// <summary>Attaches synchronised statistics to every BatchNorm2d of <paramref name="model"/>.</summary>
    public SyncBatchNorm(nn.Module model, IProcessGroup group)
    {
        Group = group;
        if (!group.Communicates) return;
        foreach (var (_, module) in model.named_modules())
        {
            if (module is not BatchNorm2d bn) continue;
            bool synced = false;
            var pre = bn.register_forward_pre_hook((m, input) =>
            {
                synced = m.training;
                if (synced) m.train(false);
                return null!;
            });
            var post = bn.register_forward_hook((m, input, output) =>
            {
                if (!synced) return null!;
                m.train(true);
                synced = false;
                output.Dispose();
                return Forward(bn, input, Group);
            });
            _hooks.Add(() => { pre.remove(); post.remove(); });
            Modules++;
        }
    }

    /// <summary>The group whose ranks share statistics.</summary>
    public IProcessGroup Group { get; }

    /// <summary>Number of BatchNorm2d modules synchronised.</summary>
    public int Modules { get; }

    /// <summary>SyncBatchNorm's training forward of <paramref name="bn"/> on <paramref name="x"/> (n, c, h, w).</summary>
    public static Tensor Forward(BatchNorm2d bn, Tensor x, IProcessGroup group)
    {
        long channels = x.shape[1];
        long count = x.numel() / Math.Max(channels, 1);
        using var scope = NewDisposeScope();
        var x64 = x.to(ScalarType.Float64);
        var reduceDims = new long[] { 0, 2, 3 };
        var local = cat(new[]
        {
            x64.sum(reduceDims), (x64 * x64).sum(reduceDims),
            full(new long[] { 1 }, Scalars.Of(count), dtype: ScalarType.Float64, device: x.device), // made on the device: no copy
        });                                                                                  // (2c + 1)
        var global = AllReduceSum.apply(local, group);                                       // (2c + 1)
        var n = global[2 * channels].detach();                                               // ()
        var mean = global.narrow(0, 0, channels) / n;                                        // (c)
        var variance = (global.narrow(0, channels, channels) / n - mean * mean).clamp_min(0); // (c) biased
        double eps = bn.eps;
        var invStd = (variance + eps).rsqrt();
        var shape = new long[] { 1, channels, 1, 1 };
        var y = (x - mean.to(x.dtype).view(shape)) * invStd.to(x.dtype).view(shape);
        if (bn.weight is not null) y = y * bn.weight.view(shape);
        if (bn.bias is not null) y = y + bn.bias.view(shape);
        if (y.dtype != x.dtype) y = y.to(x.dtype);         // bf16/fp16 in, the same out (the fp32 affine promoted it)

        using (no_grad())
        {
            double momentum = bn.momentum ?? 0.1;
            // n / max(n − 1, 1) as tensor operations (the same float64 arithmetic): no host sync
            var unbiased = variance.detach() * n.div(n.Plus(Scalars.Of(-1)).clamp_min(Scalars.One));
            bn.running_mean?.mul_(1 - momentum).add_(mean.detach().to(bn.running_mean.dtype), alpha: momentum);
            bn.running_var?.mul_(1 - momentum).add_(unbiased.to(bn.running_var.dtype), alpha: momentum);
            bn.num_batches_tracked?.add_(1);
        }
        return y.MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var remove in _hooks) remove();
        _hooks.Clear();
    }

    /// <summary>All-reduce SUM whose backward is an all-reduce SUM of the gradient (every rank's loss uses the sum).</summary>
    sealed class AllReduceSum : autograd.SingleTensorFunction<AllReduceSum>
    {
        public override string Name => nameof(AllReduceSum);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var input = (Tensor)vars[0];
            var group = (IProcessGroup)vars[1];
            ctx.save_data("group", group);
            var output = input.detach().clone();
            group.AllReduce(output, ReduceOp.Sum);
            return output;
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            var group = (IProcessGroup)ctx.get_data("group");
            var grad = grad_output.contiguous().clone();
            group.AllReduce(grad, ReduceOp.Sum);
            return new List<Tensor> { grad, null! }; // one entry per argument (the group gets none)
        }
    }
}
