using Osprey.Cli;
using Spectre.Console;

namespace Osprey.Tests.Cli;

public class CliAppTests
{
    /// <summary>Runs the command line with captured output (no colours, wide lines).</summary>
    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors,
        });
        console.Profile.Width = 240;
        int code = new CliApp(console, error).Run(args);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void UnknownKeyIsOneLineNamingTheNearestKeyWithUsageExitCode()
    {
        var (code, _, err) = Run("info", "epoch=3");
        Assert.Equal(CliApp.UsageError, code);
        Assert.Equal("osprey: error: 'epoch' is not a valid osprey argument; did you mean 'epochs'?", err.TrimEnd());
    }

    [Fact]
    public void UnknownModeNamesTheNearestMode()
    {
        var (code, _, err) = Run("inf");
        Assert.Equal(CliApp.UsageError, code);
        Assert.StartsWith("osprey: error: 'inf' is not an osprey mode; did you mean 'info'?", err);
    }

    [Fact]
    public void BadValueIsOneLineWithoutStackTraceUnlessVerbose()
    {
        var (code, _, err) = Run("info", "--epochs", "x");
        Assert.Equal(CliApp.UsageError, code);
        Assert.Single(err.TrimEnd().Split('\n'));
        var (verboseCode, _, verboseErr) = Run("info", "epochs=x", "verbose=True");
        Assert.Equal(CliApp.UsageError, verboseCode);
        Assert.Contains("   at Osprey.Config.ArgsParser", verboseErr);
    }

    [Fact]
    public void InfoReportsVersionsBackendAndDevices()
    {
        var (code, output, err) = Run("info");
        Assert.Equal(0, code);
        Assert.Equal("", err);
        Assert.Matches(@"libtorch\s+2\.10", output);
        Assert.Matches(@"TorchSharp\s+0\.107\.0", output);
        Assert.Matches(@"backend\s+cpu build", output);
        Assert.Matches(@"devices\s+cpu", output);
        Assert.Matches($@"threads\s+\d+ torch, {Environment.ProcessorCount} cores", output);
    }

    [Fact]
    public void SummaryPrintsUltralyticsCountsForYolov8n()
    {
        var (code, output, err) = Run("summary", "model=yolov8n.yaml");
        Assert.Equal(0, code);
        Assert.Equal("", err);
        // Ultralytics: "YOLOv8n summary: 225 layers, 3,157,200 parameters, 3,157,184 gradients" and 8.7 GFLOPs fused
        Assert.Contains("YOLOv8n summary: 225 layers, 3,157,200 parameters, 3,157,184 gradients, 8.7 GFLOPs at 640 px", output);
        Assert.Matches(@"22\s+\[15, 18, 21\]\s+1\s+897,664\s+Detect", output);
    }

    [Fact]
    public void SummaryHonoursNcAndImgsz()
    {
        var (code, output, _) = Run("summary", "--model", "yolov8n.yaml", "--nc", "3", "--imgsz", "320");
        Assert.Equal(0, code);
        Assert.Contains("3,011,433 parameters", output); // 3,157,200 − 145,767 (cv3 heads shrink from 80 to 3 classes)
        Assert.Contains("GFLOPs at 320 px", output);
        Assert.Contains("nc=3", output);
    }

    [Fact]
    public void SummaryOfAMissingModelFileIsOneLine()
    {
        var (code, _, err) = Run("summary", "model=/nonexistent/best.safetensors");
        Assert.Equal(CliApp.Failure, code);
        Assert.Single(err.TrimEnd().Split('\n'));
        Assert.Contains("/nonexistent/best.safetensors", err);
    }
}
