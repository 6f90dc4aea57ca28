using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Distributed;

/// <summary>
/// <see cref="IAllReduceChannel"/> over OpenMPI: <c>MPI_Iallreduce</c> (in place) on a duplicate of the world
/// communicator, advanced by <c>MPI_Test</c> in <see cref="Progress"/> and finished by the group's polling wait
/// (timeout and liveness probes as for its own collectives). The same algorithm (libnbc) as the group's polled
/// all-reduce, so the results are the same bits.
/// </summary>
internal sealed unsafe class MpiAllReduceChannel(MpiProcessGroup group, MpiLibrary mpi, IntPtr comm) : IAllReduceChannel
{
    readonly List<Pending> inFlight = new();
    IntPtr comm = comm;

    MpiProcessGroup Group => group;

    public IPendingAllReduce Start(Tensor tensor, ReduceOp op)
    {
        group.CheckUsable(tensor, "all-reduce");
        ObjectDisposedException.ThrowIf(comm == IntPtr.Zero, this);
        if (!tensor.is_contiguous()) throw new ArgumentException("a channel all-reduce needs a contiguous tensor", nameof(tensor));
        IntPtr type = tensor.dtype switch
        {
            ScalarType.Float32 => mpi.Float,
            ScalarType.Float64 => mpi.Double,
            _ => throw new ArgumentException($"a channel all-reduce takes float32 or float64, not {tensor.dtype}", nameof(tensor)),
        };
        if (op == ReduceOp.Max) throw new ArgumentException("a channel all-reduce does Sum or Average", nameof(op));
        if (tensor.numel() > int.MaxValue) throw new ArgumentException("a channel all-reduce takes at most 2^31 - 1 elements", nameof(tensor));
        var pending = new Pending(this, tensor, op, $"all-reduce {op} of {tensor.numel()} {tensor.dtype} (gradient bucket)");
        if (tensor.numel() == 0) return pending.Completed();
        IntPtr request;
        lock (group.CallLock)
            group.Check(mpi.Iallreduce(MpiLibrary.InPlace, TensorMemory.DataPointer(tensor), (int)tensor.numel(), type, mpi.OpSum, comm, &request), pending.What);
        pending.Request = request;
        inFlight.Add(pending);
        return pending;
    }

    public void Progress()
    {
        // One MPI_Test drives every outstanding non-blocking collective of the process (opal_progress).
        if (inFlight.Count == 0) return;
        Pending oldest = inFlight[0];
        int done = 0;
        IntPtr request = oldest.Request;
        lock (group.CallLock) group.Check(mpi.Test(&request, &done, IntPtr.Zero), oldest.What);
        oldest.Request = request;
        if (done != 0) oldest.Finish();
    }

    public void Dispose()
    {
        if (comm == IntPtr.Zero) return;
        int finalized = 0;
        mpi.Finalized(&finalized);
        IntPtr handle = comm;
        comm = IntPtr.Zero;
        // note: an all-reduce still in flight (after a failure) keeps the communicator; the job is aborting anyway.
        if (finalized == 0 && inFlight.Count == 0)
            lock (group.CallLock) mpi.CommFree(&handle);
    }

    sealed class Pending(MpiAllReduceChannel channel, Tensor tensor, ReduceOp op, string what) : IPendingAllReduce
    {
        bool done;

        public IntPtr Request;
        public string What => what;

        public IPendingAllReduce Completed()
        {
            done = true;
            return this;
        }

        public void Finish()
        {
            done = true;
            channel.inFlight.Remove(this);
            // note: the same arithmetic as MpiProcessGroup.AllReduce (sum, then one division).
            if (op != ReduceOp.Average) return;
            using var world = channel.Group.WorldSize.ToScalar(); // as MpiProcessGroup.AllReduce: an int scalar
            tensor.div_(world);
        }

        public void Wait()
        {
            if (done) return;
            lock (channel.Group.CallLock) channel.Group.Wait(Request, what, tensor);
            Finish();
        }
    }
}
