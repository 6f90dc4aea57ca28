using System.Globalization;
using Osprey.Config;
using Osprey.Inference;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary><c>osprey predict model=… source=… [conf=0.25] [save_txt=True] [save_json=True]</c>.</summary>
public sealed class PredictCommand : ICliCommand
{
    public string Name => "predict";
    public string Description => "detect objects in images, folders, globs, videos or streams (model=… source=…)";

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        var report = PredictRun.Run(args, line => output.WriteLine(line));
        foreach (var line in report.Lines.Where(l => l.Contains('→'))) output.WriteLine(line);
        string skipped = report.Skipped.Count > 0 ? $", {report.Skipped.Count} unreadable skipped" : "";
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{report.Images} images, {report.Detections} detections{skipped}, {report.MillisecondsPerImage:0.0} ms per image (letterbox + inference + NMS, {report.Backend})"));
        output.WriteLine($"Results saved to {report.RunDirectory}");
        if (report.Images == 0 && report.Skipped.Count > 0)
        {
            output.WriteLine("error: nothing could be read: " + string.Join("; ", report.Skipped));
            return 1;
        }
        return 0;
    }
}
