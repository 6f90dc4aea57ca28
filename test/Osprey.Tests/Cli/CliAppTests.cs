using Osprey.Cli;
using Spectre.Console;

namespace Osprey.Tests.Cli;

public class CliAppTests
{
    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors,
        });
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
}
