using static TorchSharp.torch;

namespace Osprey.Distributed;

/// <summary>A world of one process: every collective leaves the data as it is (no copies, no waiting).</summary>
public sealed class SingleProcessGroup : IProcessGroup
{
    /// <inheritdoc/>
    public int Rank => 0;

    /// <inheritdoc/>
    public int WorldSize => 1;

    /// <inheritdoc/>
    public string Backend => "single";

    /// <inheritdoc/>
    public bool Communicates => false;

    /// <inheritdoc/>
    public TimeSpan Timeout { get; set; } = ProcessGroupOptions.DefaultTimeout;

    /// <inheritdoc/>
    public void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        if (op == ReduceOp.Average && !tensor.is_floating_point())
            throw new ArgumentException($"all-reduce Average needs a floating-point tensor, not {tensor.dtype}", nameof(tensor));
    }

    /// <inheritdoc/>
    public void Broadcast(Tensor tensor, int root = 0)
    {
        if (root != 0) throw new ArgumentOutOfRangeException(nameof(root), root, "root must be 0 in a world of one");
    }

    /// <inheritdoc/>
    public Tensor AllGather(Tensor input) => input.dim() == 0 ? input.reshape(1).clone() : input.clone();

    /// <inheritdoc/>
    public void Barrier() { }

    /// <inheritdoc/>
    public void Abort(int exitCode = 1) => Environment.Exit(exitCode == 0 ? 1 : exitCode);

    /// <inheritdoc/>
    public void Dispose() { }
}
