using Osprey.Config;
using Osprey.Runtime;
using Spectre.Console;
using TorchSharp;

namespace Osprey.Cli;

/// <summary><c>osprey info</c>: versions, backend, devices and threads.</summary>
public sealed class InfoCommand : ICliCommand
{
    public string Name => "info";
    public string Description => "Osprey, TorchSharp and libtorch versions, backend, devices, threads";

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        var table = new Table().HideHeaders().Border(TableBorder.None).AddColumn("").AddColumn("");
        void Row(string key, string value) => table.AddRow(new Markup($"[bold]{key}[/]"), new Text(value));
        Row("Osprey", TorchRuntime.OspreyVersion);
        Row("TorchSharp", TorchRuntime.TorchSharpVersion);
        Row("libtorch", TorchRuntime.LibTorchVersion);
        Row("backend", TorchBackend.BuildBackend + " build");
        Row("CUDA", TorchBackend.CudaAvailable ? $"available, {torch.cuda.device_count()} GPU(s)"
            : TorchBackend.CudaLoadError is { } why ? $"not available (loading CUDA libtorch failed: {why})" : "not available");
        var devices = new List<string> { "cpu" };
        if (TorchBackend.CudaAvailable)
            devices.AddRange(Enumerable.Range(0, torch.cuda.device_count()).Select(i => $"cuda:{i}"));
        Row("devices", string.Join(", ", devices));
        Row("threads", $"{torch.get_num_threads()} torch, {Environment.ProcessorCount} cores");
        Row(".NET", Environment.Version.ToString());
        Row("OS", System.Runtime.InteropServices.RuntimeInformation.OSDescription);
        output.Write(table);
        return 0;
    }
}
