using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;
using static Osprey.Distributed.TensorMemory;

namespace Osprey.Distributed;

/// <summary>
/// Collectives on CUDA tensors through NCCL, one GPU per rank. Work is enqueued on the legacy default stream (stream 0),
/// which orders it with TorchSharp's own kernels before and after, so calls return before the GPU has finished.
/// </summary>
/// <remarks>
/// The NCCL unique id made by rank 0 reaches the other ranks by MPI broadcast under mpirun, otherwise through
/// <see cref="TcpRendezvous"/> on MASTER_ADDR:MASTER_PORT. A watchdog thread polls <c>ncclCommGetAsyncError</c> and the
/// completion event of every collective every 100 ms; on an error, or a collective older than <see cref="Timeout"/>,
/// it aborts the communicator (which releases kernels stuck waiting for a dead peer) and calls
/// <see cref="ProcessGroupOptions.OnFatalError"/> (default: exit the process non-zero).
/// </remarks>
public sealed unsafe class NcclProcessGroup : IProcessGroup
{
    static readonly TimeSpan WatchdogPeriod = TimeSpan.FromMilliseconds(100);

    readonly NcclLibrary nccl;
    readonly CudaRuntimeLibrary cuda;
    readonly IntPtr comm;
    readonly int cudaDevice;
    readonly Action<string> onFatalError;
    readonly Queue<(IntPtr Event, string What, long StartedAt)> pending = new();
    readonly Thread watchdog;
    readonly MpiProcessGroup? bootstrap;
    volatile string? failure;
    volatile bool disposed;

    /// <summary>
    /// Joins the job described by <paramref name="environment"/> on GPU <paramref name="cudaDevice"/>
    /// (usually the local rank). note: blocks until every rank has joined (ncclCommInitRank), typically 0.1–1 s.
    /// </summary>
    /// <exception cref="DistributedException">NCCL or the CUDA runtime is missing, the rendezvous fails, or NCCL fails.</exception>
    public NcclProcessGroup(DistributedEnvironment environment, int cudaDevice, ProcessGroupOptions? options = null)
    {
        options ??= new ProcessGroupOptions();
        nccl = NcclLibrary.Instance; // first: a clear error on machines without NCCL
        cuda = CudaRuntimeLibrary.Instance;
        Rank = environment.Rank;
        WorldSize = environment.WorldSize;
        Host = Environment.MachineName;
        Timeout = options.Timeout;
        this.cudaDevice = cudaDevice;
        onFatalError = options.OnFatalError ?? (message => Environment.FailFast(message));

        CheckCuda(cuda.SetDevice(cudaDevice), $"cudaSetDevice({cudaDevice})");
        NcclUniqueId id = default;
        if (Rank == 0) Check(nccl.GetUniqueId(&id), "ncclGetUniqueId");
        byte[] idBytes = new Span<byte>(id.Bytes, NcclUniqueId.Length).ToArray();
        if (environment.Launcher == LauncherKind.OpenMpi)
        {
            bootstrap = new MpiProcessGroup(options);
            using var scope = NewDisposeScope();
            Tensor idTensor = tensor(idBytes, ScalarType.Byte);
            bootstrap.Broadcast(idTensor, root: 0);
            idBytes = idTensor.data<byte>().ToArray();
        }
        else
        {
            idBytes = TcpRendezvous.Broadcast(Rank == 0 ? idBytes : null, NcclUniqueId.Length, environment, options.Timeout);
        }
        new ReadOnlySpan<byte>(idBytes).CopyTo(new Span<byte>(id.Bytes, NcclUniqueId.Length));

        IntPtr communicator;
        Check(nccl.CommInitRank(&communicator, WorldSize, id, Rank), "ncclCommInitRank");
        comm = communicator;
        watchdog = new Thread(WatchdogLoop) { IsBackground = true, Name = $"osprey-nccl-watchdog-{Rank}" };
        watchdog.Start();
    }

    /// <inheritdoc/>
    public int Rank { get; }

    /// <inheritdoc/>
    public int WorldSize { get; }

    /// <inheritdoc/>
    public string Backend => "nccl";

    /// <inheritdoc/>
    public bool Communicates => true;

    /// <summary>This process's host name (in error messages).</summary>
    public string Host { get; }

    /// <inheritdoc/>
    public TimeSpan Timeout { get; set; }

    /// <summary>True when libnccl.so.2 loads on this machine; otherwise <paramref name="error"/> says what to install.</summary>
    public static bool IsAvailable(out string error) => NcclLibrary.IsAvailable(out error);

    /// <inheritdoc/>
    /// <remarks>A CPU tensor (the trainer's control messages: the run folder, flags, loss sums, validation statistics) is
    /// copied to this rank's GPU, reduced there and copied back: a host sync.</remarks>
    public void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        if (IsHost(tensor))
        {
            Staged(tensor, onDevice => AllReduce(onDevice, op));
            return;
        }
        CheckUsable(tensor);
        if (tensor.numel() == 0) return;
        if (op == ReduceOp.Average && !tensor.is_floating_point())
            throw new ArgumentException($"all-reduce Average needs a floating-point tensor, not {tensor.dtype}", nameof(tensor));
        using var scope = NewDisposeScope();
        Tensor work = Contiguous(tensor);
        IntPtr data = TensorMemory.DataPointer(work);
        int nativeOp = op switch { ReduceOp.Sum => NcclLibrary.OpSum, ReduceOp.Average => NcclLibrary.OpAverage, _ => NcclLibrary.OpMax };
        string what = $"all-reduce {op} of {tensor.numel()} {tensor.dtype}";
        Check(nccl.AllReduce(data, data, (nuint)work.numel(), DataType(work.dtype), nativeOp, comm, IntPtr.Zero), what);
        Track(what);
        if (!ReferenceEquals(work, tensor)) tensor.copy_(work); // stream-ordered after the reduction
    }

    /// <inheritdoc/>
    /// <remarks>A CPU tensor is staged through this rank's GPU, as in <see cref="AllReduce"/>.</remarks>
    public void Broadcast(Tensor tensor, int root = 0)
    {
        if (IsHost(tensor))
        {
            Staged(tensor, onDevice => Broadcast(onDevice, root));
            return;
        }
        CheckUsable(tensor);
        if (root < 0 || root >= WorldSize) throw new ArgumentOutOfRangeException(nameof(root), root, $"root must be in [0, {WorldSize})");
        if (tensor.numel() == 0) return;
        using var scope = NewDisposeScope();
        Tensor work = Contiguous(tensor);
        IntPtr data = TensorMemory.DataPointer(work);
        string what = $"broadcast from rank {root} of {tensor.numel()} {tensor.dtype}";
        Check(nccl.BroadcastOp(data, data, (nuint)work.numel(), DataType(work.dtype), root, comm, IntPtr.Zero), what);
        Track(what);
        if (!ReferenceEquals(work, tensor)) tensor.copy_(work);
    }

    /// <inheritdoc/>
    /// <remarks>A CPU input is gathered through this rank's GPU and the result comes back on the CPU.</remarks>
    public Tensor AllGather(Tensor input)
    {
        if (IsHost(input))
        {
            using var staging = NewDisposeScope();
            var onDevice = input.to(torch.device(DeviceType.CUDA, cudaDevice));
            return AllGather(onDevice).cpu().MoveToOuterDisposeScope();
        }
        CheckUsable(input);
        long[] shape = input.dim() == 0 ? new long[] { WorldSize } : input.shape.ToArray();
        if (input.dim() > 0) shape[0] *= WorldSize;
        using var scope = NewDisposeScope();
        Tensor output = empty(shape, input.dtype, input.device);
        if (input.numel() > 0)
        {
            Tensor work = Contiguous(input);
            string what = $"all-gather of {input.numel()} {input.dtype}";
            Check(nccl.AllGather(TensorMemory.DataPointer(work), TensorMemory.DataPointer(output), (nuint)work.numel(),
                DataType(work.dtype), comm, IntPtr.Zero), what);
            Track(what);
        }
        return output.MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    /// <remarks>note: a CPU-GPU sync point: waits for all work queued on stream 0, this one-element all-reduce included.</remarks>
    public void Barrier()
    {
        using var scope = NewDisposeScope();
        AllReduce(ones(1, device: torch.device(DeviceType.CUDA, cudaDevice)));
        CheckCuda(cuda.StreamSynchronize(IntPtr.Zero), "barrier (cudaStreamSynchronize)");
        if (failure is not null) throw new DistributedException(Rank, Host, failure);
    }

    /// <inheritdoc/>
    public void Abort(int exitCode = 1)
    {
        failure ??= "aborted";
        nccl.CommAbort(comm);
        if (bootstrap is not null) bootstrap.Abort(exitCode);
        Environment.Exit(exitCode == 0 ? 1 : exitCode);
    }

    /// <summary>Waits for queued collectives, stops the watchdog and destroys the communicator.</summary>
    public void Dispose()
    {
        if (disposed) return;
        if (failure is null) cuda.StreamSynchronize(IntPtr.Zero);
        disposed = true;
        watchdog.Join();
        if (failure is null) nccl.CommDestroy(comm);
        lock (pending)
            while (pending.Count > 0) cuda.EventDestroy(pending.Dequeue().Event);
        bootstrap?.Dispose();
    }

    static bool IsHost(Tensor tensor) => tensor.device_type == DeviceType.CPU;

    // Runs collective on a copy of host on this rank's GPU and copies the result back (device → pageable host: it waits).
    void Staged(Tensor host, Action<Tensor> collective)
    {
        using var scope = NewDisposeScope();
        var onDevice = host.to(torch.device(DeviceType.CUDA, cudaDevice));
        collective(onDevice);
        host.copy_(onDevice);
    }

    static int DataType(ScalarType dtype) => dtype switch
    {
        ScalarType.Int8 => NcclLibrary.Int8,
        ScalarType.Byte => NcclLibrary.Uint8,
        ScalarType.Float32 => NcclLibrary.Float32,
        ScalarType.BFloat16 => NcclLibrary.BFloat16,
        ScalarType.Float16 => NcclLibrary.Float16,
        ScalarType.Float64 => NcclLibrary.Float64,
        ScalarType.Int32 => NcclLibrary.Int32,
        ScalarType.Int64 => NcclLibrary.Int64,
        _ => throw new ArgumentException($"NCCL collectives do not support dtype {dtype}"),
    };

    // Records a completion event after the enqueued collective, for the watchdog's timeout.
    void Track(string what)
    {
        IntPtr completion;
        CheckCuda(cuda.EventCreateWithFlags(&completion, CudaRuntimeLibrary.EventDisableTiming), "cudaEventCreateWithFlags");
        CheckCuda(cuda.EventRecord(completion, IntPtr.Zero), "cudaEventRecord");
        lock (pending) pending.Enqueue((completion, what, Stopwatch.GetTimestamp()));
    }

    void WatchdogLoop()
    {
        cuda.SetDevice(cudaDevice); // event queries need this thread on the same device
        while (!disposed && failure is null)
        {
            Thread.Sleep(WatchdogPeriod);
            int asyncError = NcclLibrary.Success;
            nccl.CommGetAsyncError(comm, &asyncError);
            if (asyncError != NcclLibrary.Success && asyncError != NcclLibrary.InProgress)
            {
                Fail($"NCCL communicator failed: {nccl.Describe(asyncError)} (a peer rank died or the network failed)");
                return;
            }
            lock (pending)
            {
                while (pending.Count > 0)
                {
                    var (completion, what, startedAt) = pending.Peek();
                    int state = cuda.EventQuery(completion);
                    if (state == CudaRuntimeLibrary.NotReady)
                    {
                        if (Stopwatch.GetElapsedTime(startedAt) > Timeout)
                        {
                            Fail($"{what} did not complete within {Timeout.TotalSeconds:0.#} s: a peer rank is hung or dead");
                            return;
                        }
                        break;
                    }
                    pending.Dequeue();
                    cuda.EventDestroy(completion);
                    if (state != CudaRuntimeLibrary.Success)
                    {
                        Fail($"{what} failed on the GPU (cudaError {state})");
                        return;
                    }
                }
            }
        }
    }

    void Fail(string message)
    {
        failure = message;
        // note: ncclCommAbort makes kernels waiting on a dead peer return, so the CUDA stream drains.
        nccl.CommAbort(comm);
        onFatalError(new DistributedException(Rank, Host, message).Message);
    }

    void Check(int result, string what)
    {
        if (result == NcclLibrary.Success) return;
        failure = $"{what} failed: {nccl.Describe(result)}";
        throw new DistributedException(Rank, Host, failure);
    }

    void CheckCuda(int result, string what)
    {
        if (result != CudaRuntimeLibrary.Success)
            throw new DistributedException(Rank, Host, $"{what} failed (cudaError {result})");
    }

    void CheckUsable(Tensor tensor)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (failure is not null) throw new DistributedException(Rank, Host, $"the NCCL group failed earlier ({failure}); call Abort");
        if (tensor.device_type != DeviceType.CUDA || tensor.device_index != cudaDevice)
            throw new ArgumentException($"the NCCL group on cuda:{cudaDevice} got a tensor on {tensor.device}", nameof(tensor));
    }
}
