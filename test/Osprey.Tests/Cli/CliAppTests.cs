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
    public void SummaryPrintsUltralyticsCountsForYolo11n()
    {
        var (code, output, err) = Run("summary", "model=yolo11n.yaml");
        Assert.Equal(0, code);
        Assert.Equal("", err);
        // yolo11.yaml: "summary: 319 layers, 2624080 parameters, 2624064 gradients"; Ultralytics' docs: 6.5 GFLOPs (fused)
        Assert.Contains("YOLO11n summary: 319 layers, 2,624,080 parameters, 2,624,064 gradients, 6.5 GFLOPs at 640 px", output);
        Assert.Matches(@"2\s+-1\s+1\s+6,640\s+C3k2\s+\[32, 64, 1, False, 0\.25\]", output);
        Assert.Matches(@"10\s+-1\s+1\s+249,728\s+C2PSA\s+\[256, 256, 1\]", output);
        Assert.Matches(@"23\s+\[16, 19, 22\]\s+1\s+464,912\s+Detect\s+\[80, \[64, 128, 256\]\]", output);
    }

    /// <summary>
    /// Ultralytics' printed summaries of the unfused YOLOv10 models (both branches, 80 classes), as quoted in THU-MIG/yolov10
    /// issue #226 (n) and in users' training logs (s, m): the layer count includes the SiLU each deepcopied one-to-one
    /// branch list brings. GFLOPs differ by design: Osprey's are of the fused (one-to-one only) model.
    /// </summary>
    [Theory]
    [InlineData("n", "YOLOv10n summary: 385 layers, 2,775,520 parameters, 2,775,504 gradients")]
    [InlineData("s", "YOLOv10s summary: 402 layers, 8,128,272 parameters, 8,128,256 gradients")]
    [InlineData("m", "YOLOv10m summary: 498 layers, 16,576,768 parameters, 16,576,752 gradients")]
    public void SummaryPrintsUltralyticsCountsForYolov10(string scale, string expected)
    {
        var (code, output, err) = Run("summary", $"model=yolov10{scale}.yaml");
        Assert.Equal(0, code);
        Assert.Equal("", err);
        Assert.Contains(expected, output);
        Assert.Matches(@"23\s+\[16, 19, 22\]\s+1\s+[\d,]+\s+v10Detect\s+\[80, \[", output);
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
