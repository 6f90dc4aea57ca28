using System.Globalization;
using Osprey.Config;
using Osprey.Evaluation;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary><c>osprey val model=… data=… [save_json=True]</c>: metrics table, plots and predictions.json.</summary>
public sealed class ValCommand : ICliCommand
{
    public string Name => "val";
    public string Description => "validate weights on a dataset (model=best.safetensors data=coco8.yaml [save_json=True])";

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        var report = ValidationRun.Run(args);
        var d = report.Dataset;
        output.WriteLine($"{ArgsSchema.Format(args.Split)}: {d.Images} images, {d.Backgrounds} backgrounds, {d.Boxes} boxes");
        output.Write(MetricsTable.Build(report.Result, report.Names));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Speed: {report.Result.MillisecondsPerImage:0.0} ms inference + NMS per image ({report.Backend})"));
        if (report.PredictionsJson is not null) output.WriteLine($"Saving {report.PredictionsJson}");
        output.WriteLine($"Results saved to {report.RunDirectory}");
        return 0;
    }
}
