using Osprey.Cli;
using Spectre.Console;

return new CliApp(AnsiConsole.Console, Console.Error).Run(args);
