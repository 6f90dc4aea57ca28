using System.Text;
using Osprey.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Distributed;

/// <summary>
/// The one seam between training and data parallelism (PyTorch DDP's role), over a process group: in one process
/// (<see cref="SingleProcessGroup"/>) every call leaves the data as it is. The trainer touches it in three places only:
/// <see cref="Shard"/> (each rank loads its share of every epoch), <see cref="Wrap"/> (the replica whose gradients are
/// averaged over the ranks) and <see cref="IsMain"/> (only rank 0 writes files and reports). Everything else that needs
/// the ranks gets it from here: the loss normaliser (<see cref="SumOverRanks(Tensor)"/>), validation
/// (<see cref="AllGather"/>), the fp16 loss scaler (<see cref="AnyRank"/>), AutoBatch (<see cref="SmallestOverRanks"/>),
/// and the decisions rank 0 makes for all (<see cref="MainDecides(string?)"/>).
/// </summary>
/// <param name="group">The ranks.</param>
/// <param name="ownsGroup">Dispose the group with this object.</param>
public sealed class DataParallel(IProcessGroup group, bool ownsGroup = false) : IDisposable
{
    /// <summary>One process: every collective is the identity.</summary>
    public DataParallel() : this(new SingleProcessGroup(), ownsGroup: true) { }

    /// <summary>The group of <paramref name="job"/> for tensors on <paramref name="device"/>: one process needs none
    /// (<see cref="ProcessGroupFactory.NeedsGroup"/>), several get MPI (CPU) or NCCL (CUDA).</summary>
    public static DataParallel Start(DistributedEnvironment job, Device device) => ProcessGroupFactory.NeedsGroup(job)
        ? new DataParallel(ProcessGroupFactory.Create(device, job), ownsGroup: true)
        : new DataParallel();

    /// <summary>The process group.</summary>
    public IProcessGroup Group { get; } = group;

    /// <summary>This rank.</summary>
    public int Rank => Group.Rank;

    /// <summary>Number of ranks.</summary>
    public int World => Group.WorldSize;

    /// <summary>Rank 0: the only rank that writes files and reports events.</summary>
    public bool IsMain => Group.Rank == 0;

    /// <summary>True for a real backend, even at world 1 (<see cref="IProcessGroup.Communicates"/>): every collective runs.</summary>
    public bool Communicates => Group.Communicates;

    /// <summary>The line a run logs about its ranks, or null in one process.</summary>
    public string? Description => Communicates ? $"data parallel: {World} rank(s), {Group.Backend} process group" : null;

    /// <summary>This rank's share of a loader: <c>DistributedSampler</c> for training, <c>ValidationSampler</c> for validation.</summary>
    public LoaderOptions Shard(LoaderOptions options) => options with { Rank = Rank, WorldSize = World };

    /// <summary>The replica of <paramref name="model"/> on this rank (DDP's wrapped model): see <see cref="Replica"/>.</summary>
    /// <param name="model">The model, on its device.</param>
    /// <param name="flat">Its flat parameter layout: the gradient buckets are slices of its gradient buffers.</param>
    /// <param name="syncBatchNorm">Synchronise BatchNorm statistics (<c>sync_bn=True</c>) instead of broadcasting rank 0's.</param>
    /// <param name="bucketBytes">Bucket capacity (DDP's <c>bucket_cap_mb</c>, 25 MB).</param>
    public Replica Wrap(nn.Module model, Osprey.Training.FlatParameters flat, bool syncBatchNorm, long bucketBytes = Replica.DefaultBucketBytes) =>
        new(model, this, flat, syncBatchNorm, bucketBytes);

    /// <summary>
    /// Σ over the ranks of <paramref name="local"/> (a copy, all-reduced); <paramref name="local"/> itself in one process. The
    /// loss divides by the global batch's target-score sum this way, so every rank divides by the same number
    /// (<see cref="Replica.ScaleLoss"/> completes the arithmetic).
    /// </summary>
    public Tensor SumOverRanks(Tensor local)
    {
        if (!Communicates) return local;
        var global = local.clone();
        Group.AllReduce(global, ReduceOp.Sum);
        return global;
    }

    /// <summary>Σ over the ranks of <paramref name="values"/> (float64); a copy of the values in one process.</summary>
    public double[] SumOverRanks(double[] values)
    {
        if (!Communicates) return values.ToArray();
        using var t = tensor(values, dtype: ScalarType.Float64);
        Group.AllReduce(t, ReduceOp.Sum);
        return t.data<double>().ToArray();
    }

    /// <summary>True when <paramref name="flag"/> (a float32 tensor of one element, 0 or 1, on any device) is set on any rank;
    /// reads it back to the host (note: a device → host sync point).</summary>
    public bool AnyRank(Tensor flag)
    {
        using var one = flag.reshape(1);
        using var contiguous = one.contiguous();
        if (Communicates) Group.AllReduce(contiguous, ReduceOp.Max);
        using var host = contiguous.cpu();
        return host.item<float>() != 0;
    }

    /// <summary>The smallest of the ranks' <paramref name="value"/> (all-reduce MAX of the negation), on every rank.</summary>
    public int SmallestOverRanks(int value, Device device)
    {
        if (!Communicates) return value;
        using var t = tensor(new long[] { -value }, device: device);
        Group.AllReduce(t, ReduceOp.Max);
        using var host = t.cpu();
        return (int)-host.data<long>()[0];
    }

    /// <summary>Rank 0's <paramref name="value"/> on every rank (e.g. whether its clock says stop).</summary>
    public bool MainDecides(bool value)
    {
        if (!Communicates) return value;
        using var t = tensor(new long[] { value ? 1 : 0 });
        Group.Broadcast(t, root: 0);
        return t.data<long>()[0] != 0;
    }

    /// <summary>Rank 0's <paramref name="text"/> on every rank (null stays null; e.g. the run folder rank 0 created).</summary>
    public string? MainDecides(string? text)
    {
        if (!Communicates) return text;
        byte[] bytes = IsMain && text is not null ? Encoding.UTF8.GetBytes(text) : Array.Empty<byte>();
        using var length = tensor(new long[] { IsMain ? (text is null ? -1 : bytes.Length) : 0 });
        Group.Broadcast(length, root: 0);
        int n = (int)length.data<long>()[0];
        if (n <= 0) return n < 0 ? null : "";
        using var data = IsMain ? tensor(bytes.Select(b => (int)b).ToArray()) : zeros(n, dtype: ScalarType.Int32);
        Group.Broadcast(data, root: 0);
        return Encoding.UTF8.GetString(data.data<int>().ToArray().Select(v => (byte)v).ToArray());
    }

    /// <summary>Rank 0's <paramref name="module"/> (parameters and buffers) on every rank; on the others
    /// <paramref name="create"/> builds the module the state is copied into (they may not share rank 0's files).</summary>
    public T MainDecides<T>(Func<T> load, Func<T> create) where T : nn.Module
    {
        T module = IsMain ? load() : create();
        BroadcastModule(module);
        return module;
    }

    /// <summary>Copies rank 0's whole state (parameters and buffers) of <paramref name="module"/> to every rank.</summary>
    public void BroadcastModule(nn.Module module)
    {
        if (!Communicates) return;
        using var noGrad = no_grad();
        foreach (var (_, state) in module.state_dict()) Group.Broadcast(state, root: 0);
    }

    /// <summary>Every rank's <paramref name="local"/> values, concatenated in rank order (the lists may differ in length);
    /// in one process the values themselves.</summary>
    public IReadOnlyList<double> AllGather(IReadOnlyList<double> local)
    {
        if (!Communicates) return local;
        using var length = tensor(new long[] { local.Count });
        using var lengths = Group.AllGather(length);
        long[] counts = lengths.data<long>().ToArray();
        long longest = Math.Max(counts.Max(), 1);                        // padded to the longest: one shape on every rank
        var padded = new double[longest];
        for (int i = 0; i < local.Count; i++) padded[i] = local[i];
        using var mine = tensor(padded, dtype: ScalarType.Float64);
        using var all = Group.AllGather(mine);
        double[] gathered = all.data<double>().ToArray();
        var result = new List<double>((int)counts.Sum());
        for (int r = 0; r < counts.Length; r++) result.AddRange(gathered.AsSpan((int)(r * longest), (int)counts[r]).ToArray());
        return result;
    }

    /// <summary>
    /// Runs <paramref name="body"/> on this rank. A failure on one rank ends the whole job: with a real group
    /// <paramref name="fatal"/> is told why, and <see cref="IProcessGroup.Abort"/> ends every rank (non-zero exit); in one
    /// process the exception is simply thrown. After success every rank waits for the others (barrier).
    /// </summary>
    public T Run<T>(Func<T> body, Action<string>? fatal = null)
    {
        if (!Communicates) return body();
        try
        {
            T result = body();
            Group.Barrier();
            return result;
        }
        catch (Exception e)
        {
            fatal?.Invoke($"rank {Rank} of {World} failed: {e}");
            Group.Abort(1);
            throw;
        }
    }

    /// <summary>Disposes the group when this object owns it.</summary>
    public void Dispose()
    {
        if (ownsGroup) Group.Dispose();
    }
}
