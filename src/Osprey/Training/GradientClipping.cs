using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// Gradient clipping by the global L2 norm, with libtorch's <c>clip_grad_norm_</c> arithmetic (norm of each gradient,
/// norm of those norms, <c>coef = max_norm / (total + 1e-6)</c> clamped at 1, every gradient × coef) but without its
/// device → host sync: TorchSharp's <c>nn.utils.clip_grad_norm_</c> returns the norm as a double, which makes the host
/// wait for backward to finish on a GPU before it can queue the optimiser's kernels.
/// </summary>
public static class GradientClipping
{
    /// <summary>Rows in which a flat buffer's norm is taken (<see cref="ClipNorm"/>).</summary>
    public const long FlatRow = 1024;

    /// <summary>Clips <paramref name="gradients"/> (the flat gradient buffers of <see cref="FlatParameters"/>) in place to a
    /// global norm of at most <paramref name="maxNorm"/>. Each buffer's norm is taken as the norm of the norms of its
    /// <see cref="FlatRow"/>-element rows: the CPU kernel sums the squares of a long vector in float32 one lane at a time,
    /// which for a whole group drifts by ~1e-4 of the norm; rows keep it as close as one norm per parameter is.</summary>
    public static void ClipNorm(IReadOnlyList<Tensor> gradients, double maxNorm)
    {
        if (gradients.Count == 0) return;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var total = cat(gradients.Select(RowNorms).ToArray()).norm(2f);
        var coefficient = full_like(total, Scalars.Of(maxNorm)).div_(total.Plus(Scalars.Of(1e-6))).clamp_max_(Scalars.One);
        foreach (Tensor gradient in gradients) gradient.mul_(coefficient);
    }

    // The norms of a flat buffer's FlatRow-element rows and of its tail: (rows [+ 1]) whose norm is the buffer's norm.
    static Tensor RowNorms(Tensor flat)
    {
        long n = flat.numel(), rows = n / FlatRow;
        if (rows == 0) return flat.norm(2f).reshape(1);
        var whole = flat.narrow(0, 0, rows * FlatRow).view(rows, FlatRow).norm(1, false, 2f);
        return n == rows * FlatRow ? whole : cat(new[] { whole, flat.narrow(0, rows * FlatRow, n - rows * FlatRow).norm(2f).reshape(1) });
    }
}
