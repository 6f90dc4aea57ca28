namespace Osprey.Distributed;

/// <summary>How <see cref="IProcessGroup.AllReduce"/> combines the ranks' tensors.</summary>
public enum ReduceOp
{
    /// <summary>Element-wise sum over all ranks.</summary>
    Sum,

    /// <summary>Element-wise mean over all ranks (sum divided by the world size; floating-point tensors only).</summary>
    Average,

    /// <summary>Element-wise maximum over all ranks (useful for "did any rank see a non-finite loss").</summary>
    Max,
}
