using Osprey.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Distributed;

public class ProcessGroupFactoryTests
{
    static readonly DistributedEnvironment TwoRanksTorchrun = new(1, 2, 1, 2, "127.0.0.1", 29500, LauncherKind.TorchRun);

    [SkippableFact]
    public void CudaWithoutNcclGivesAClearError()
    {
        Skip.If(NcclProcessGroup.IsAvailable(out _), "NCCL is available on this machine (a GPU machine): the error for its absence cannot occur; the GPU checks cover NCCL");
        var error = Assert.Throws<DistributedException>(() => ProcessGroupFactory.Create(DeviceType.CUDA, TwoRanksTorchrun));
        Assert.Contains("libnccl.so.2", error.Message);
        Assert.Contains("NCCL is not available", error.Message);
        Assert.False(NcclProcessGroup.IsAvailable(out string reason));
        Assert.Equal(error.Message, reason);
    }

    [Fact]
    public void CpuAcrossProcessesNeedsMpirun()
    {
        var error = Assert.Throws<DistributedException>(() => ProcessGroupFactory.Create(DeviceType.CPU, TwoRanksTorchrun));
        Assert.Contains("mpirun", error.Message);
    }

    [Fact]
    public void OneProcessGetsTheNoOpGroup()
    {
        using var scope = NewDisposeScope();
        using IProcessGroup group = ProcessGroupFactory.Create(CPU, DistributedEnvironment.Single);
        Assert.IsType<SingleProcessGroup>(group);
        Assert.Equal((0, 1, "single"), (group.Rank, group.WorldSize, group.Backend));
        var values = tensor(new float[] { 1, 2, 3 });
        group.AllReduce(values, ReduceOp.Average);
        group.Broadcast(values);
        group.Barrier();
        Assert.Equal(new float[] { 1, 2, 3 }, values.data<float>().ToArray());
        Assert.Equal(new long[] { 1 }, group.AllGather(tensor(5L)).shape);
        Assert.Equal(new long[] { 2, 2 }, group.AllGather(zeros(2, 2)).shape);
        Assert.Throws<ArgumentException>(() => group.AllReduce(tensor(new[] { 1, 2 }), ReduceOp.Average));
    }

    [Fact]
    public void BackendVariableForcesOnlyNcclOrMpi()
    {
        Assert.Null(ProcessGroupFactory.RequestedBackend((string?)null));
        Assert.Null(ProcessGroupFactory.RequestedBackend(" Auto "));
        Assert.Equal("nccl", ProcessGroupFactory.RequestedBackend("NCCL"));
        Assert.Equal("mpi", ProcessGroupFactory.RequestedBackend("mpi"));
        var error = Assert.Throws<DistributedException>(() => ProcessGroupFactory.RequestedBackend("gloo"));
        Assert.Contains("OSPREY_PROCESS_GROUP=gloo", error.Message);
    }

    [Fact]
    public void ForcedBackendMustServeTheDevice()
    {
        string? saved = Environment.GetEnvironmentVariable(ProcessGroupFactory.BackendVariable);
        try
        {
            Environment.SetEnvironmentVariable(ProcessGroupFactory.BackendVariable, "nccl");
            var wrong = Assert.Throws<DistributedException>(() => ProcessGroupFactory.Create(DeviceType.CPU, DistributedEnvironment.Single));
            Assert.Contains("CPU tensors are reduced by mpi", wrong.Message);
            // mpi at world 1 without mpirun: the launcher error, not a silent no-op group
            Environment.SetEnvironmentVariable(ProcessGroupFactory.BackendVariable, "mpi");
            var noMpirun = Assert.Throws<DistributedException>(() => ProcessGroupFactory.Create(DeviceType.CPU, DistributedEnvironment.Single));
            Assert.Contains("mpirun", noMpirun.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable(ProcessGroupFactory.BackendVariable, saved);
        }
    }

    [Fact]
    public void MpiLibraryIsInstalled() =>
        Assert.True(MpiProcessGroup.IsAvailable(out string error), error + " (run build/install-deps.sh)");

    [Fact]
    public void MpirunFailureMessagesNameTheRank()
    {
        Assert.Equal(1, LocalLauncher.ParseMpirunFailedRank("mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed)."));
        Assert.Equal(0, LocalLauncher.ParseMpirunFailedRank("MPI_ABORT was invoked on rank 0 in communicator MPI_COMM_WORLD"));
        Assert.Null(LocalLauncher.ParseMpirunFailedRank("all good"));
    }
}
