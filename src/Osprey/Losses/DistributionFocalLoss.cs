using Osprey.Runtime;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Osprey.Losses;

/// <summary>Distribution focal loss (DFL) and the expectation decode of the box distributions.</summary>
public static class DistributionFocalLoss
{
    /// <summary>
    /// Expected distance per side: softmax over the bins · [0, 1, …, regMax − 1].
    /// </summary>
    /// <param name="predDist">shape(b, A, 4·regMax) raw logits, side-major (4 sides × regMax bins).</param>
    /// <returns>shape(b, A, 4) ltrb distances in grid units.</returns>
    public static Tensor Expectation(Tensor predDist, int regMax)
    {
        using var scope = NewDisposeScope();
        long batch = predDist.shape[0], numAnchors = predDist.shape[1];
        var project = arange(regMax, dtype: predDist.dtype, device: predDist.device);           // (regMax)
        return predDist.view(batch, numAnchors, 4, regMax).softmax(3).matmul(project)           // (b, A, 4)
            .MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Ultralytics <c>DFLoss</c>: target t clamped to [0, regMax − 1 − 0.01], left bin l = ⌊t⌋, right r = l + 1,
    /// loss = CE(logits, l)·(r − t) + CE(logits, r)·(t − l), averaged over the 4 sides.
    /// </summary>
    /// <param name="predDist">shape(P·4, regMax) logits.</param>
    /// <param name="target">shape(P, 4) ltrb target distances in grid units.</param>
    /// <param name="regMax">Bins per side (16).</param>
    /// <returns>shape(P, 1).</returns>
    public static Tensor Loss(Tensor predDist, Tensor target, int regMax)
    {
        using var scope = NewDisposeScope();
        var clamped = target.clamp(Scalars.Int(0), Scalars.Of(regMax - 1 - 0.01));                                        // (P, 4)
        var left = clamped.to_type(ScalarType.Int64);                                            // (P, 4)
        var right = left.Plus(Scalars.IntOne);
        var weightLeft = right.to_type(clamped.dtype) - clamped;                                 // (P, 4)
        var weightRight = Scalars.IntOne.From(weightLeft);
        var lossLeft = F.cross_entropy(predDist, left.view(-1), reduction: nn.Reduction.None).view(left.shape);
        var lossRight = F.cross_entropy(predDist, right.view(-1), reduction: nn.Reduction.None).view(left.shape);
        return (lossLeft * weightLeft).Plus(lossRight * weightRight).mean(new long[] { -1 }, keepdim: true)
            .MoveToOuterDisposeScope();
    }
}
