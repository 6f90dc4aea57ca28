using Osprey.Config;
using Osprey.Tests.Models;
using Osprey.Tuning;

namespace Osprey.Tests.Tuning;

/// <summary>Where trials run: CPU slices, GPU shares, Slurm job steps, mpirun hosts, and the command lines they get.</summary>
public class TunePlacementTests
{
    static readonly TrialProgram Program = new("/usr/bin/dotnet", new[] { "/opt/osprey/Osprey.Cli.dll", "tune-trial" });

    static OspreyArgs Args(params string[] tokens) => ArgsParser.Parse(tokens);

    [Fact]
    public void OnTheCpuSlotsShareTheCoresAndTrialsRunAsLocalProcesses()
    {
        var placement = TrialPlacement.Plan(Args("device=cpu", "trials_at_once=3"), new Dictionary<string, string>(), cores: 16);
        Assert.IsType<LocalTrialLauncher>(placement.Launcher);
        Assert.Equal(new[] { "cpu 1/3", "cpu 2/3", "cpu 3/3" }, placement.Slots.Select(s => s.Label));
        Assert.All(placement.Slots, s => Assert.Equal(("cpu", 5), (s.Device, s.Threads!.Value)));
        Assert.Single(TrialPlacement.Plan(Args("device=cpu"), new Dictionary<string, string>(), 16).Slots); // one at a time by default

        var command = placement.Launcher.Command(placement.Slots[0], "trial0", Program, new[] { "lr0=0.01" });
        Assert.Equal("/usr/bin/dotnet", command.Executable);
        Assert.Equal(new[] { "/opt/osprey/Osprey.Cli.dll", "tune-trial", "lr0=0.01" }, command.Arguments);
        Assert.Equal("5", command.Environment["OMP_NUM_THREADS"]);
        Assert.True(command.Environment.ContainsKey("RANK") && command.Environment["RANK"] is null);   // a trial is a job of its own
    }

    [Theory]
    [InlineData("0,1,2,3", 4, new[] { "0", "1", "2", "3" })]
    [InlineData("0,1,2,3", 2, new[] { "0,1", "2,3" })]
    [InlineData("0,1,2,3", 1, new[] { "0,1,2,3" })]
    [InlineData("0,1", 4, new[] { "0", "1", "0", "1" })]
    public void GpusAreSharedEvenly(string device, int trials, string[] expected) =>
        Assert.Equal(expected, TrialPlacement.GpuGroups(device.Split(',').Select(int.Parse).ToArray(), trials));

    [Fact]
    public void GpusThatDoNotSplitEvenlyAreAnError()
    {
        var e = Assert.Throws<ArgumentsException>(() => TrialPlacement.GpuGroups(new[] { 0, 1, 2 }, 2));
        Assert.Contains("trials_at_once=2 does not share device=0,1,2 evenly", e.Message);
    }

    [Fact]
    public void UnderSlurmEachTrialIsAnExclusiveJobStepWithTheTasksResources()
    {
        string bin = TestModels.TempDir();
        File.WriteAllText(Path.Combine(bin, "srun"), "#!/bin/sh\n");
        var environment = new Dictionary<string, string>
        {
            ["SLURM_JOB_ID"] = "4242", ["SLURM_NTASKS"] = "4", ["SLURM_CPUS_PER_TASK"] = "8", ["SLURM_GPUS_PER_TASK"] = "a100:2",
            ["PATH"] = $"/nowhere:{bin}",
        };
        var placement = TrialPlacement.Plan(Args("data=shapes"), environment, cores: 2);
        var slurm = Assert.IsType<SlurmTrialLauncher>(placement.Launcher);
        Assert.Equal(Path.Combine(bin, "srun"), slurm.Srun);
        Assert.Equal(new[] { "srun 0", "srun 1", "srun 2", "srun 3" }, placement.Slots.Select(s => s.Label));
        Assert.All(placement.Slots, s => Assert.Equal(("0,1", 8), (s.Device, s.Threads!.Value)));   // the step's own GPUs are 0 and 1
        var command = slurm.Command(placement.Slots[1], "trial5", Program, new[] { "lr0=0.01" });
        Assert.Equal(new[] { "--exclusive", "-N1", "-n1", "--cpus-per-task=8", "--gpus-per-task=2", "--job-name=trial5",
            "/usr/bin/dotnet", "/opt/osprey/Osprey.Cli.dll", "tune-trial", "lr0=0.01" }, command.Arguments);
        Assert.Equal("8", command.Environment["OMP_NUM_THREADS"]);

        Assert.Equal(2, TrialPlacement.Plan(Args("trials_at_once=2"), environment, 2).Slots.Count);
        environment["PATH"] = "/nowhere";
        Assert.Contains("srun is not on PATH", Assert.Throws<ArgumentsException>(() => TrialPlacement.Plan(Args(), environment, 2)).Message);
    }

    [Fact]
    public void AHostfileSpreadsTrialsOverItsHostsUnderMpirun()
    {
        Osprey.Tests.Distributed.WorkerRunner.RequireMpirun();
        string hostfile = Path.Combine(TestModels.TempDir(), "hosts");
        File.WriteAllText(hostfile, "# two nodes\nnode1 slots=2\nnode2 slots=1   # small one\n");
        Assert.Equal(new[] { ("node1", 2), ("node2", 1) }, MpirunTrialLauncher.ReadHostfile(hostfile));
        var placement = TrialPlacement.Plan(Args($"hostfile={hostfile}", "device=0,1"), new Dictionary<string, string>(), 2);
        Assert.Equal(new[] { "node1 #0", "node2 #0", "node1 #1" }, placement.Slots.Select(s => s.Label));
        Assert.Equal(new[] { "0", "0,1", "1" }, placement.Slots.Select(s => s.Device));
        var command = placement.Launcher.Command(placement.Slots[1], "trial0", Program, new[] { "lr0=0.01" });
        Assert.Equal(new[] { "--allow-run-as-root", "-np", "1", "-H", "node2", "--bind-to", "none", "/usr/bin/dotnet",
            "/opt/osprey/Osprey.Cli.dll", "tune-trial", "lr0=0.01" }, command.Arguments);
        Assert.Contains("has 3 slot(s)", Assert.Throws<ArgumentsException>(
            () => TrialPlacement.Plan(Args($"hostfile={hostfile}", "trials_at_once=4"), new Dictionary<string, string>(), 2)).Message);
        File.WriteAllText(hostfile, "node1 slots=two\n");
        Assert.Contains($"{hostfile}: line 1: 'slots=two'", Assert.Throws<ArgumentsException>(() => MpirunTrialLauncher.ReadHostfile(hostfile)).Message);
    }
}
