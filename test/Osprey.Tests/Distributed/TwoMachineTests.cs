using Osprey.Config;
using Osprey.Data;
using Osprey.Distributed;
using Osprey.Models;
using Osprey.Tests.Models;
using Osprey.Training;
using Xunit.Abstractions;

namespace Osprey.Tests.Distributed;

/// <summary>
/// Multi-machine data parallelism without a cluster: two ranks in two network namespaces of this test (one veth link
/// between them, nothing else) train exactly like two ranks on one machine, and like one process with the whole batch.
/// </summary>
[Collection("multi-process")]
public class TwoMachineTests(ITestOutputHelper log)
{
    static readonly ShapesOptions Shapes = new(ImageSize: 64, TrainImages: 24, ValImages: 8, Seed: 3);
    const int Steps = 3;                                  // 24 images, batch 8, nbs 8: an optimiser step per batch
    static readonly Dictionary<string, string> RankEnvironment = new() { ["OMP_NUM_THREADS"] = "1" };

    static string CliDll => Path.Combine(AppContext.BaseDirectory, "Osprey.Cli.dll");

    static Dictionary<string, float[]> Weights(string path) =>
        ModelFactory.Create(path).state_dict().ToDictionary(kv => kv.Key, kv => Osprey.Runtime.HostCopy.Floats(kv.Value));

    [Fact]
    public async Task TrainingOnTwoMachinesEqualsTheOneMachineRun()
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(Shapes, dir);
        string model = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(model, TestModels.TinyYaml());
        string[] common = { $"data={data}", $"model={model}", "epochs=1", "imgsz=64", "batch=8", "nbs=8", "workers=1",
            "device=cpu", $"project={dir}", "sync_bn=True", "plots=False" };
        // What a user runs on each node: the CLI itself as the rank (mpirun's variables make it one; rank 0 names the run).
        string[] RankCommand(string name) => new[] { LocalLauncher.DotnetHost, CliDll, "train" }.Concat(common).Append($"name={name}").ToArray();

        // Two "machines" first: a host that cannot make them fails here, with the reason.
        using var pair = NetworkNamespacePair.Create(dir);
        string idA = pair.NamespaceId(pair.NameA), idB = pair.NamespaceId(pair.NameB);
        Assert.Equal(new[] { "lo", pair.VethA }, pair.Interfaces(pair.NameA).Order());
        Assert.Equal(new[] { "lo", pair.VethB }, pair.Interfaces(pair.NameB).Order());

        // One machine: mpirun -np 2 with its default (shared-memory) transport.
        WorkerRunner.RequireMpirun();
        string[] local = RankCommand("local");
        LaunchResult oneMachine = await LocalLauncher.RunAsync(new LaunchOptions(2, local[0], local[1..])
        {
            Environment = RankEnvironment,
            Timeout = TimeSpan.FromSeconds(120),
        });
        log.WriteLine($"one machine: exit {oneMachine.ExitCode} in {oneMachine.Elapsed.TotalSeconds:0.0} s");
        Assert.True(oneMachine.ExitCode == 0, oneMachine.Text);

        // Two machines: rank 0 in namespace A, rank 1 in namespace B, TCP over the veth link.
        string report = Path.Combine(dir, "netns-report");
        var (startA, startB) = (pair.Traffic(pair.NameA, pair.VethA), pair.Traffic(pair.NameB, pair.VethB));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        ProcessOutput twoMachines = pair.Mpirun(report, RankCommand("netns"), RankEnvironment, TimeSpan.FromSeconds(120));
        log.WriteLine($"two machines: exit {twoMachines.ExitCode} in {watch.Elapsed.TotalSeconds:0.0} s");
        Assert.True(twoMachines.ExitCode == 0, twoMachines.Text);
        var (endA, endB) = (pair.Traffic(pair.NameA, pair.VethA), pair.Traffic(pair.NameB, pair.VethB));
        long receivedA = endA.Received - startA.Received, receivedB = endB.Received - startB.Received;
        log.WriteLine($"veth: A received {receivedA} B, B received {receivedB} B");

        // Isolation: each rank ran in its own namespace, neither in the test's, and OpenMPI saw two nodes of one rank each.
        string own = new FileInfo("/proc/self/ns/net").LinkTarget!;
        string[] rank0 = File.ReadAllText(Path.Combine(report, "rank0.netns")).Split(' ', StringSplitOptions.TrimEntries);
        string[] rank1 = File.ReadAllText(Path.Combine(report, "rank1.netns")).Split(' ', StringSplitOptions.TrimEntries);
        log.WriteLine($"test {own}; rank 0 {string.Join(' ', rank0)}; rank 1 {string.Join(' ', rank1)}");
        Assert.Equal(idA, rank0[0]);
        Assert.Equal(idB, rank1[0]);
        Assert.Equal(3, new[] { own, idA, idB }.Distinct().Count());
        Assert.Equal(new[] { "0", "1" }, rank0[1..]);                   // local rank 0 of a local world of 1
        Assert.Equal(new[] { "0", "1" }, rank1[1..]);

        // The ranks' only way to each other is the veth (each namespace holds lo and its end, nothing else): every
        // gradient all-reduce crossed it. Each rank needs the other's whole gradient each step, so each end received
        // at least steps × parameters × 4 bytes.
        string netnsRun = Path.Combine(dir, "netns");
        using var trained = ModelFactory.Create(Path.Combine(netnsRun, "weights", "last.safetensors"));
        long parameters = trained.parameters().Sum(p => p.numel());
        long atLeast = Steps * parameters * sizeof(float);
        Assert.True(receivedA >= atLeast && receivedB >= atLeast,
            $"over the veth A received {receivedA} B, B received {receivedB} B: less than {atLeast} B of gradients");

        // Equivalence: bit-identical parameters, BatchNorm statistics and results row with the one-machine run …
        var two = Weights(Path.Combine(netnsRun, "weights", "last.safetensors"));
        var one = Weights(Path.Combine(dir, "local", "weights", "last.safetensors"));
        Assert.Equal(one.Keys.Order(), two.Keys.Order());
        foreach (string key in one.Keys) Assert.True(one[key].AsSpan().SequenceEqual(two[key]), $"{key} differs between one and two machines");
        var rowOne = ResultsCsv.Read(Path.Combine(dir, "local", "results.csv")).Single();
        var rowTwo = ResultsCsv.Read(Path.Combine(netnsRun, "results.csv")).Single();
        foreach (string column in ResultsCsv.Columns.Where(c => c != "time"))
            Assert.True(rowOne[column] == rowTwo[column], $"{column}: {rowOne[column]} on one machine, {rowTwo[column]} on two");

        // … and, within float32 rounding, one process with the whole batch of 8.
        var single = new Trainer(ArgsParser.Parse(common.Append("name=single").ToArray())).Train();
        var reference = Weights(single.LastWeights);
        double worst = one.Keys.Max(key => reference[key].Zip(two[key], (a, b) => (double)Math.Abs(a - b)).DefaultIfEmpty(0).Max());
        log.WriteLine($"max |one process − two machines| over parameters and BN statistics: {worst:E2}");
        Assert.True(worst < 1e-5, $"two machines differ from one process by {worst:E2}");
    }
}
