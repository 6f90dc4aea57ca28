using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;
using static Osprey.Distributed.TensorMemory;

namespace Osprey.Distributed;

/// <summary>
/// Collectives on CPU tensors through OpenMPI (<c>libmpi.so.40</c>), for processes started by <c>mpirun</c>.
/// </summary>
/// <remarks>
/// <para>bfloat16/float16: MPI has no such types, so all-reduce converts to float32, reduces, divides (Average) and
/// rounds back once. That costs two conversions and twice the message size, and is more accurate than summing in
/// 16 bits; a custom MPI_Op would halve the traffic but is slower per element on the CPU. Broadcast and all-gather move
/// raw bytes, so they take any dtype at its own size.</para>
/// <para>Timeouts: with a finite <see cref="Timeout"/> each collective is started non-blocking (<c>MPI_Iallreduce</c>, …)
/// and polled with <c>MPI_Test</c> until done or past the deadline; the polling thread spins like a blocking MPI call
/// would. With <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> blocking calls are used.</para>
/// <para>Failures: errors are returned, not fatal (<c>MPI_ERRORS_RETURN</c>) and become <see cref="DistributedException"/>
/// with OpenMPI's message. A rank that dies is noticed by mpirun, which then kills every other rank.</para>
/// </remarks>
public sealed unsafe class MpiProcessGroup : IProcessGroup
{
    static readonly object InitLock = new();
    static bool finalized;

    readonly MpiLibrary mpi;
    readonly IntPtr comm;
    readonly object callLock = new();
    string? failure;
    bool disposed;

    /// <summary>Initialises MPI (once per process; MPI cannot restart after <see cref="Dispose"/>) on MPI_COMM_WORLD.</summary>
    /// <exception cref="DistributedException">libmpi is missing, or MPI fails to start.</exception>
    public MpiProcessGroup(ProcessGroupOptions? options = null)
    {
        options ??= new ProcessGroupOptions();
        Timeout = options.Timeout;
        Host = Environment.MachineName;
        mpi = MpiLibrary.Instance;
        comm = mpi.CommWorld;
        lock (InitLock)
        {
            if (finalized) throw new DistributedException("MPI was finalized in this process and cannot start again");
            int initialized = 0;
            Check(mpi.Initialized(&initialized), "MPI_Initialized");
            if (initialized == 0)
            {
                int provided = 0;
                // note: MPI_Init_thread connects to mpirun's daemon and wires up the ranks: tens of milliseconds.
                Check(mpi.InitThread(null, null, MpiLibrary.ThreadSerialized, &provided), "MPI_Init_thread");
            }
        }
        int level = 0;
        Check(mpi.QueryThread(&level), "MPI_Query_thread");
        ThreadLevel = level;
        Check(mpi.CommSetErrhandler(comm, mpi.ErrorsReturn), "MPI_Comm_set_errhandler");
        int rank = 0, size = 0;
        Check(mpi.CommRank(comm, &rank), "MPI_Comm_rank");
        Check(mpi.CommSize(comm, &size), "MPI_Comm_size");
        Rank = rank;
        WorldSize = size;
    }

    /// <inheritdoc/>
    public int Rank { get; private set; } = -1;

    /// <inheritdoc/>
    public int WorldSize { get; }

    /// <inheritdoc/>
    public string Backend => "mpi";

    /// <inheritdoc/>
    public bool Communicates => true;

    /// <summary>This process's host name (in error messages).</summary>
    public string Host { get; }

    /// <inheritdoc/>
    public TimeSpan Timeout { get; set; }

    /// <summary>
    /// The thread support MPI provides (0 SINGLE, 1 FUNNELED, 2 SERIALIZED, 3 MULTIPLE); SERIALIZED is requested:
    /// any thread may call MPI, one at a time (every call here holds a lock).
    /// </summary>
    public int ThreadLevel { get; }

    /// <summary>True when libmpi.so.40 can be loaded here (MPI is not started).</summary>
    public static bool IsAvailable(out string error) => MpiLibrary.IsAvailable(out error);

    /// <inheritdoc/>
    public void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        CheckUsable(tensor, "all-reduce");
        if (tensor.numel() == 0) return;
        bool isFloat = tensor.is_floating_point();
        if (op == ReduceOp.Average && !isFloat)
            throw new ArgumentException($"all-reduce Average needs a floating-point tensor, not {tensor.dtype}", nameof(tensor));
        using var scope = NewDisposeScope();
        bool sixteenBit = tensor.dtype is ScalarType.BFloat16 or ScalarType.Float16;
        // note: a bf16/fp16 tensor or a non-contiguous one costs one copy in and one copy out.
        Tensor work = sixteenBit ? tensor.to_type(ScalarType.Float32).contiguous() : Contiguous(tensor);
        IntPtr type = work.dtype switch
        {
            ScalarType.Float32 => mpi.Float,
            ScalarType.Float64 => mpi.Double,
            ScalarType.Int32 => mpi.Int32,
            ScalarType.Int64 => mpi.Int64,
            _ => throw new ArgumentException($"all-reduce does not support dtype {tensor.dtype}", nameof(tensor)),
        };
        IntPtr mpiOp = op == ReduceOp.Max ? mpi.OpMax : mpi.OpSum;
        string what = $"all-reduce {op} of {tensor.numel()} {tensor.dtype}";
        IntPtr data = TensorMemory.DataPointer(work);
        long elementSize = work.element_size();
        lock (callLock)
        {
            for (long offset = 0, total = work.numel(); offset < total; offset += int.MaxValue)
            {
                int count = (int)Math.Min(int.MaxValue, total - offset);
                IntPtr chunk = data + checked((nint)(offset * elementSize));
                if (Blocking)
                {
                    Check(mpi.Allreduce(MpiLibrary.InPlace, chunk, count, type, mpiOp, comm), what);
                }
                else
                {
                    IntPtr request;
                    Check(mpi.Iallreduce(MpiLibrary.InPlace, chunk, count, type, mpiOp, comm, &request), what);
                    Wait(request, what, work);
                }
            }
        }
        if (op == ReduceOp.Average) work.div_(WorldSize);
        if (!ReferenceEquals(work, tensor)) tensor.copy_(work);
    }

    /// <inheritdoc/>
    public void Broadcast(Tensor tensor, int root = 0)
    {
        CheckUsable(tensor, "broadcast");
        CheckRoot(root);
        if (tensor.numel() == 0) return;
        using var scope = NewDisposeScope();
        Tensor work = Contiguous(tensor);
        string what = $"broadcast from rank {root} of {tensor.numel()} {tensor.dtype}";
        IntPtr data = TensorMemory.DataPointer(work);
        lock (callLock)
        {
            // Raw bytes: any dtype, no conversion.
            long totalBytes = work.numel() * work.element_size();
            for (long offset = 0; offset < totalBytes; offset += int.MaxValue)
            {
                int count = (int)Math.Min(int.MaxValue, totalBytes - offset);
                IntPtr chunk = data + checked((nint)offset);
                if (Blocking)
                {
                    Check(mpi.Bcast(chunk, count, mpi.Byte, root, comm), what);
                }
                else
                {
                    IntPtr request;
                    Check(mpi.Ibcast(chunk, count, mpi.Byte, root, comm, &request), what);
                    Wait(request, what, work);
                }
            }
        }
        if (!ReferenceEquals(work, tensor)) tensor.copy_(work);
    }

    /// <inheritdoc/>
    public Tensor AllGather(Tensor input)
    {
        CheckUsable(input, "all-gather");
        long[] shape = input.dim() == 0 ? new long[] { WorldSize } : input.shape.ToArray();
        if (input.dim() > 0) shape[0] *= WorldSize;
        using var scope = NewDisposeScope();
        Tensor output = empty(shape, input.dtype);
        if (input.numel() > 0)
        {
            Tensor work = Contiguous(input);
            long bytes = work.numel() * work.element_size();
            if (bytes > int.MaxValue) throw new ArgumentException("all-gather takes at most 2 GB per rank", nameof(input));
            string what = $"all-gather of {input.numel()} {input.dtype}";
            IntPtr send = TensorMemory.DataPointer(work), receive = TensorMemory.DataPointer(output);
            lock (callLock)
            {
                if (Blocking)
                {
                    Check(mpi.Allgather(send, (int)bytes, mpi.Byte, receive, (int)bytes, mpi.Byte, comm), what);
                }
                else
                {
                    IntPtr request;
                    Check(mpi.Iallgather(send, (int)bytes, mpi.Byte, receive, (int)bytes, mpi.Byte, comm, &request), what);
                    Wait(request, what, output);
                }
            }
        }
        return output.MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public void Barrier()
    {
        CheckUsable(null, "barrier");
        lock (callLock)
        {
            if (Blocking)
            {
                Check(mpi.BarrierBlocking(comm), "barrier");
            }
            else
            {
                IntPtr request;
                Check(mpi.Ibarrier(comm, &request), "barrier");
                Wait(request, "barrier", null);
            }
        }
    }

    /// <inheritdoc/>
    public void Abort(int exitCode = 1)
    {
        // note: mpirun kills every rank, this one included; the call does not return.
        mpi.AbortJob(comm, exitCode == 0 ? 1 : exitCode);
        Environment.Exit(exitCode == 0 ? 1 : exitCode);
    }

    /// <summary>Finalizes MPI unless a collective failed (then only <see cref="Abort"/> is safe).</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        if (failure is not null) return;
        lock (InitLock)
        {
            int done = 0;
            mpi.Finalized(&done);
            if (done == 0)
            {
                // note: MPI_Finalize synchronises with the other ranks.
                mpi.Finalize();
            }
            finalized = true;
        }
    }

    bool Blocking => Timeout == System.Threading.Timeout.InfiniteTimeSpan;

    // Polls a non-blocking collective until it completes or the timeout passes. MPI progresses only inside MPI calls,
    // so the loop keeps calling MPI_Test (yielding the core now and then, which matters with more ranks than cores).
    internal void Wait(IntPtr request, string what, Tensor? buffer)
    {
        long start = Stopwatch.GetTimestamp();
        for (int spins = 1; ; spins++)
        {
            int done = 0;
            Check(mpi.Test(&request, &done, IntPtr.Zero), what);
            if (done != 0) return;
            if ((spins & 63) != 0) continue;
            AnswerLivenessProbes();
            if (!Blocking && Stopwatch.GetElapsedTime(start) > Timeout)
            {
                // The request stays pending and MPI may still write into the buffer: keep it alive, refuse further use.
                abandonedBuffer = buffer?.alias();
                abandonedBuffer?.DetachFromDisposeScope();
                failure = $"{what} timed out after {Timeout.TotalSeconds:0.#} s waiting for the other ranks";
                failure += ProbePeers() is { Count: > 0 } silent
                    ? $": rank(s) {string.Join(", ", silent)} did not answer a liveness probe (hung, dead, or busy outside collectives)"
                    : ": every peer answered a liveness probe (the ranks call different collectives?)";
                throw new DistributedException(Rank, Host, failure);
            }
            Thread.Yield();
        }
    }

    Tensor? abandonedBuffer;

    // Liveness probe: a rank that times out pings every peer; peers that are polling a collective (or probing
    // themselves) answer within milliseconds, so the silent ones are the hung or dead ranks. Tiny point-to-point
    // messages on their own tags: the MPI eager protocol delivers them without the receiver's help.
    const int PingTag = 31001, PongTag = 31002;
    static readonly TimeSpan ProbeWindow = TimeSpan.FromSeconds(2);

    void AnswerLivenessProbes()
    {
        while (true)
        {
            int pending = 0, value = 0;
            MpiStatus status;
            if (mpi.Iprobe(MpiLibrary.AnySource, PingTag, comm, &pending, &status) != MpiLibrary.Success || pending == 0) return;
            if (mpi.Recv((IntPtr)(&value), 1, mpi.Int32, status.Source, PingTag, comm, null) != MpiLibrary.Success) return;
            int rank = Rank;
            mpi.Send((IntPtr)(&rank), 1, mpi.Int32, status.Source, PongTag, comm);
        }
    }

    List<int> ProbePeers()
    {
        var silent = new SortedSet<int>(Enumerable.Range(0, WorldSize).Where(r => r != Rank));
        int rank = Rank;
        foreach (int peer in silent) mpi.Send((IntPtr)(&rank), 1, mpi.Int32, peer, PingTag, comm);
        long start = Stopwatch.GetTimestamp();
        while (silent.Count > 0 && Stopwatch.GetElapsedTime(start) < ProbeWindow)
        {
            AnswerLivenessProbes();
            int pending = 0, value = 0;
            MpiStatus status;
            if (mpi.Iprobe(MpiLibrary.AnySource, PongTag, comm, &pending, &status) != MpiLibrary.Success) break;
            if (pending == 0)
            {
                Thread.Yield();
                continue;
            }
            if (mpi.Recv((IntPtr)(&value), 1, mpi.Int32, status.Source, PongTag, comm, null) != MpiLibrary.Success) break;
            silent.Remove(status.Source);
        }
        return silent.ToList();
    }

    internal object CallLock => callLock;

    internal void Check(int code, string what)
    {
        if (code == MpiLibrary.Success) return;
        failure = $"{what} failed: {mpi.Describe(code)}";
        throw new DistributedException(Rank < 0 ? 0 : Rank, Host, failure);
    }

    internal void CheckUsable(Tensor? tensor, string what)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (failure is not null)
            throw new DistributedException(Rank, Host, $"{what} refused: an earlier collective failed ({failure}); call Abort");
        if (tensor is not null && tensor.device_type != DeviceType.CPU)
            throw new ArgumentException(
                $"the MPI process group takes CPU tensors, not {tensor.device}; CUDA tensors use the NCCL group", nameof(tensor));
    }

    void CheckRoot(int root)
    {
        if (root < 0 || root >= WorldSize)
            throw new ArgumentOutOfRangeException(nameof(root), root, $"root must be a rank in [0, {WorldSize})");
    }
}
