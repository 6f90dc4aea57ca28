using Osprey.Cli;
using Spectre.Console;

// Piped output (logs, CI) gets long lines instead of Spectre's 80-column wrapping.
if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 240;
return new CliApp(AnsiConsole.Console, Console.Error).Run(args);
