using Osprey.Distributed;

namespace Osprey.Tests.Distributed;

public class DistributedEnvironmentTests
{
    static DistributedEnvironment Parse(params (string Name, string Value)[] variables) =>
        DistributedEnvironment.FromVariables(variables.ToDictionary(v => v.Name, v => v.Value));

    [Fact]
    public void NoLauncherVariablesMeansOneProcess()
    {
        var environment = Parse(("PATH", "/usr/bin"), ("LOCAL_RANK", "3"));
        Assert.Equal(DistributedEnvironment.Single, environment);
        Assert.False(environment.IsDistributed);
        Assert.True(environment.IsMaster);
    }

    [Fact]
    public void ReadsTorchrunVariables()
    {
        var environment = Parse(("RANK", "5"), ("WORLD_SIZE", "8"), ("LOCAL_RANK", "1"), ("LOCAL_WORLD_SIZE", "4"),
            ("MASTER_ADDR", "node7"), ("MASTER_PORT", "12345"));
        Assert.Equal(new DistributedEnvironment(5, 8, 1, 4, "node7", 12345, LauncherKind.TorchRun), environment);
        Assert.True(environment.IsDistributed);
        Assert.False(environment.IsMaster);
    }

    [Fact]
    public void ReadsOpenMpiVariablesWithDefaultsForTheMaster()
    {
        var environment = Parse(("OMPI_COMM_WORLD_RANK", "2"), ("OMPI_COMM_WORLD_SIZE", "3"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "0"), ("OMPI_COMM_WORLD_LOCAL_SIZE", "1"));
        Assert.Equal(new DistributedEnvironment(2, 3, 0, 1, "127.0.0.1", 29500, LauncherKind.OpenMpi), environment);
    }

    [Fact]
    public void ReadsSlurmVariablesAndTakesTheMasterFromTheNodeList()
    {
        var environment = Parse(("SLURM_PROCID", "6"), ("SLURM_NTASKS", "8"), ("SLURM_LOCALID", "2"),
            ("SLURM_TASKS_PER_NODE", "4(x2)"), ("SLURM_JOB_NODELIST", "gpu[007-008]"));
        Assert.Equal(new DistributedEnvironment(6, 8, 2, 4, "gpu007", 29500, LauncherKind.Slurm), environment);
    }

    [Fact]
    public void TorchrunWinsOverOpenMpiWhichWinsOverSlurm()
    {
        var slurm = new[] { ("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1") };
        var mpi = new[] { ("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "2") };
        var torchrun = new[] { ("RANK", "3"), ("WORLD_SIZE", "4") };
        Assert.Equal(LauncherKind.OpenMpi, Parse(slurm.Concat(mpi).ToArray()).Launcher);
        var all = Parse(slurm.Concat(mpi).Concat(torchrun).ToArray());
        Assert.Equal((LauncherKind.TorchRun, 3, 4, 4), (all.Launcher, all.Rank, all.WorldSize, all.LocalWorldSize));
    }

    [Theory]
    [InlineData("RANK", "two", "RANK=two")]
    [InlineData("RANK", "4", "rank 4 of world size 4")]
    [InlineData("LOCAL_RANK", "-1", "LOCAL_RANK=-1")]
    public void MalformedVariablesGiveClearErrors(string name, string value, string expected)
    {
        var variables = new Dictionary<string, string> { ["RANK"] = "0", ["WORLD_SIZE"] = "4", [name] = value };
        var error = Assert.Throws<DistributedException>(() => DistributedEnvironment.FromVariables(variables));
        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData("node1", "node1")]
    [InlineData("node1,node2", "node1")]
    [InlineData("gpu[007-010,12]", "gpu007")]
    [InlineData("gpu[3,5]-ib,login1", "gpu3-ib")]
    [InlineData("a1,gpu[1-2]", "a1")]
    public void SlurmNodeListGivesTheFirstHost(string list, string first) => Assert.Equal(first, SlurmNodeList.FirstHost(list));
}
