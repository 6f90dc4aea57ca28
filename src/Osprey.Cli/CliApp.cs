using System.CommandLine;
using Osprey.Config;
using Osprey.Runtime;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary>
/// The <c>osprey</c> command: <c>osprey MODE key=value …</c> (or <c>--key value</c>), as <c>yolo MODE …</c> reads.
/// Every mode takes every argument of <see cref="OspreyArgs"/>; System.CommandLine parses the normalised
/// <c>--key value</c> tokens and renders help.
/// </summary>
public sealed class CliApp(IAnsiConsole output, TextWriter error)
{
    /// <summary>Exit code of a bad argument.</summary>
    public const int UsageError = 2;

    /// <summary>Exit code of a failed command.</summary>
    public const int Failure = 1;

    /// <summary>Runs the command line and returns the process exit code.</summary>
    public int Run(string[] args)
    {
        bool verbose = args.Any(a => a.Replace("--", "").Replace('-', '_').Replace(' ', '=')
            .Equals("verbose=True", StringComparison.OrdinalIgnoreCase)) || args.Contains("--verbose");
        try
        {
            TorchBackend.Initialize();
            var commands = new ICliCommand[]
            {
                new InfoCommand(), new SummaryCommand(), new TrainCommand(), new ValCommand(), new PredictCommand(),
                new ExportCommand(), new ServeCommand(), new TuneCommand(), new TuneTrialCommand(),
                new BenchDataCommand(), new BenchPredictCommand(), new BenchServeCommand(), new BenchTrainCommand(), new BenchDdpCommand(),
            };
            RootCommand root = BuildRoot(commands);
            string[] normalised = Normalise(args, commands);
            ParseResult parse = root.Parse(normalised);
            if (parse.Errors.Count > 0)
                throw new ArgumentsException(string.Join("; ", parse.Errors.Select(e => e.Message)));
            return parse.Invoke(new InvocationConfiguration { Output = error, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is ArgumentsException)
        {
            Report(e, verbose);
            return UsageError;
        }
        catch (Exception e)
        {
            Report(e, verbose);
            return Failure;
        }
    }

    void Report(Exception e, bool verbose) =>
        error.WriteLine(verbose ? $"osprey: error: {e}" : $"osprey: error: {OneLine(e)}");

    static string OneLine(Exception e)
    {
        Exception inner = e;
        while (inner is System.Reflection.TargetInvocationException or TypeInitializationException && inner.InnerException is { } next)
            inner = next;
        return inner.Message.ReplaceLineEndings(" ");
    }

    RootCommand BuildRoot(IEnumerable<ICliCommand> commands)
    {
        var root = new RootCommand(
            "Osprey: train, validate, predict, export and serve YOLO detectors. Arguments as key=value or --key value.");
        foreach (ICliCommand command in commands)
        {
            var cmd = new Command(command.Name, command.Description);
            var options = ArgsSchema.All.Select(spec => (spec, option: new Option<string>("--" + spec.Key)
            {
                Description = $"{spec.Description} (default {ArgsSchema.Format(spec.Default)})",
                Arity = spec.IsFlag ? ArgumentArity.ZeroOrOne : ArgumentArity.ExactlyOne,
            })).ToList();
            foreach (var (_, option) in options) cmd.Options.Add(option);
            cmd.SetAction(parse =>
            {
                var given = options.Where(o => parse.GetResult(o.option) is not null)
                    .Select(o => new KeyValuePair<string, string>(o.spec.Key, parse.GetValue(o.option) ?? "True"));
                return command.Execute(ArgsParser.Parse(given, command.Defaults()), output);
            });
            root.Subcommands.Add(cmd);
        }
        return root;
    }

    // `MODE key=value --key value` → `MODE --key value …` after checking every key (nearest-key errors).
    static string[] Normalise(string[] args, IEnumerable<ICliCommand> commands)
    {
        if (args.Length == 0 || args[0].StartsWith('-')) return args; // --help, --version
        if (args.Length > 1 && commands.Any(c => c.Name == $"{args[0]}-{args[1]}")) args = [$"{args[0]}-{args[1]}", .. args[2..]]; // `bench data` → bench-data, `bench predict` → bench-predict
        string mode = args[0];
        if (!commands.Any(c => c.Name == mode))
        {
            string names = string.Join(", ", commands.Select(c => c.Name));
            string nearest = commands.Select(c => c.Name).OrderBy(n => ArgsSchema.EditDistance(mode, n)).First();
            throw new ArgumentsException($"'{mode}' is not an osprey mode; did you mean '{nearest}'? (modes: {names})");
        }
        var rest = args.Skip(1).ToList();
        if (rest.Count == 1 && rest[0] is "--help" or "-h" or "-?") return args;
        var normalised = new List<string> { mode };
        foreach (var (key, value) in ArgsParser.Tokenize(rest))
        {
            normalised.Add("--" + key);
            normalised.Add(value);
        }
        return normalised.ToArray();
    }
}

/// <summary>One mode of the command line.</summary>
public interface ICliCommand
{
    /// <summary>The mode's name (train, val, info …).</summary>
    string Name { get; }

    /// <summary>One line of help.</summary>
    string Description { get; }

    /// <summary>This mode's defaults before the user's arguments are applied.</summary>
    OspreyArgs Defaults() => new();

    /// <summary>Runs the mode; returns the exit code.</summary>
    int Execute(OspreyArgs args, IAnsiConsole output);
}
